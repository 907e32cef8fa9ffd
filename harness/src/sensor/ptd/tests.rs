//! Unit tests against the fake PTDaemon in [`super::testing`], which answers in the formats of
//! recorded real sessions (its module docs cite them).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::testing::*;
use super::*;

/// 20 ms samples, so a 1.3 s window holds 60 of them.
fn fast() -> PtdOptions {
    PtdOptions {
        connect_timeout: Duration::from_secs(2),
        // Generous: the CI machine is shared; only the stall tests use a short timeout.
        reply_timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(20),
        sample_period_ms: 20,
        settle: Duration::ZERO,
        ..PtdOptions::default()
    }
}

/// The commands without their line ending, background `Watts` polls left out.
fn without_polls(seen: &[String]) -> Vec<String> {
    let mut out: Vec<String> = seen.iter().map(|l| l.trim_end().to_string()).collect();
    // A `Watts` right after `Uncertainty` is the end-of-window cross-check; the rest are polls.
    let mut keep = vec![true; out.len()];
    for i in 0..out.len() {
        keep[i] = out[i] != "Watts" || (i > 0 && out[i - 1] == "Uncertainty");
    }
    let mut k = keep.into_iter();
    out.retain(|_| k.next().unwrap());
    out
}

/// One window of `secs` seconds.
fn window(w: &PtdWindows, mark: &str, secs: f64) -> PtdWindowReport {
    w.begin_window(mark).unwrap();
    std::thread::sleep(Duration::from_secs_f64(secs));
    w.end_window(mark).unwrap()
}

fn within(got: f64, truth: f64, pct: f64) -> bool {
    (got - truth).abs() <= pct / 100.0 * truth.abs()
}

#[test]
fn ptd_wt210_session_in_power_devs_order_with_energy_from_the_log() {
    let fake = FakePtd::start(Script::default());
    let opts = PtdOptions { voltage_range: Some(PtdRange::Auto), current_range: Some(PtdRange::Value(2.0)), ..fast() };
    let sensor = PtdSensor::connect(&format!("ptd://{}", fake.addr), opts).unwrap();
    let info = sensor.info();
    assert_eq!((info.kind.as_str(), info.domain.as_str(), info.provenance), ("ptd", "system", Provenance::Measured));
    assert!(info.detail["identity"].as_str().unwrap().starts_with("YokogawaWT210,1000"), "{}", info.detail);
    let w = sensor.windows();
    let r = window(&w, "base_1", 1.4);
    assert!(r.samples.len() >= 60, "{}", r.samples.len());
    assert_eq!(r.period_s, 0.02, "the period the daemon confirmed in its Go reply");
    assert_eq!(r.unresolved, None, "{:?}", r.warnings);
    drop((sensor, w));
    let (seen, truth) = fake.finish();
    assert!(seen.iter().all(|l| l.ends_with("\r\n")), "{seen:?}");
    let e = r.energy.unwrap().0;
    assert!(within(e, truth[0].truth_j, 2.0), "{e} J against the true {} J", truth[0].truth_j);
    let expected = [
        "Hello",
        "Identify",
        "RR",
        "SR,V,Auto",
        "SR,A,2",
        "Go,20,0,base_1",
        "Stop",
        // The WT210 refuses the multichannel form, as in the recorded session.
        "RL,*,*",
        "RL",
        "Uncertainty",
        "Watts",
        // The ranges found at connect (Ranges,0,10.000000,0,150.000000) are restored on close.
        "SR,V,150",
        "SR,A,10",
    ];
    assert_eq!(without_polls(&seen), expected);
}

#[test]
fn ptd_power_step_mid_window_is_within_two_percent_of_the_truth() {
    for analyzer in [Analyzer::Wt210, Analyzer::Wt333e, Analyzer::Dc] {
        let profile = Profile::Step { before: 100.0, after: 400.0, at_s: 0.6 };
        let fake = FakePtd::start(Script { analyzer, profile, ..Script::default() });
        let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
        let w = sensor.windows();
        let r = window(&w, "step", 1.4);
        drop((sensor, w));
        let (_, truth) = fake.finish();
        let e = r.energy.unwrap_or_else(|| panic!("{analyzer:?}: {:?}", r.unresolved)).0;
        assert!(within(e, truth[0].truth_j, 2.0), "{analyzer:?}: {e} J against the true {} J", truth[0].truth_j);
        // The daemon's running average is what `Watts` says; polling it as a sample and
        // integrating (what effbench 0.1 did) would be wrong by the shape of the step.
        assert!(r.daemon_avg_w.is_some(), "{analyzer:?}");
        if analyzer == Analyzer::Wt333e {
            assert_eq!(r.samples[0].channels.len(), 3);
            let ch: f64 = r.samples[0].channels.iter().map(|c| c.watts).sum();
            assert!(within(ch, r.samples[0].watts, 0.01), "the sum channel is the sum");
        }
    }
}

#[test]
fn ptd_rl_falls_back_as_power_dev_does_and_remembers() {
    for (analyzer, expected) in [
        (Analyzer::Wt333e, vec!["RL,*,*", "RL,*,*"]),
        (Analyzer::Wt210, vec!["RL,*,*", "RL", "RL"]),
        (Analyzer::Dc, vec!["RL,*,*", "DC-RL", "DC-RL"]),
    ] {
        let fake = FakePtd::start(Script { analyzer, ..Script::default() });
        let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
        let w = sensor.windows();
        for mark in ["a", "b"] {
            let r = window(&w, mark, 0.1);
            assert!(!r.samples.is_empty(), "{analyzer:?}");
        }
        drop((sensor, w));
        let rls: Vec<String> =
            fake.commands().iter().map(|c| c.trim_end().to_string()).filter(|c| c.contains("RL")).collect();
        assert_eq!(rls, expected, "{analyzer:?}");
    }
}

#[test]
fn ptd_short_window_is_unresolved_not_a_small_number() {
    // A 1 Hz analyzer and a 0.5 s window: one sample at best (issue 9).
    let fake = FakePtd::start(Script::default());
    let sensor = PtdSensor::connect(&fake.addr, PtdOptions { sample_period_ms: 1000, ..fast() }).unwrap();
    let r = window(&sensor.windows(), "short", 0.5);
    assert_eq!(r.energy, None);
    assert!(r.unresolved.is_some(), "{r:?}");
}

#[test]
fn ptd_lost_and_error_samples_make_the_window_unresolved() {
    let fake = FakePtd::start(Script { drop_every: Some(4), ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let r = window(&sensor.windows(), "lossy", 1.4);
    assert_eq!(r.energy, None);
    assert!(r.unresolved.as_deref().unwrap().contains("samples were lost"), "{:?}", r.unresolved);

    let fake = FakePtd::start(Script { error_every: Some(10), ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let r = window(&sensor.windows(), "errors", 1.4);
    assert_eq!(r.energy, None, "10% of the lines are errors");
    assert!(r.warnings.iter().any(|w| w.contains("Bad volts reading nan")), "{:?}", r.warnings);
}

#[test]
fn ptd_uncertainty_is_a_fraction_unknown_while_auto_ranging_and_flagged_above_the_limit() {
    // WT210 with fixed ranges: the real 0.46% average.
    let fake = FakePtd::start(Script::default());
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let r = window(&sensor.windows(), "fixed", 0.2);
    let Uncertainty::Known { avg_pct, .. } = r.uncertainty else { panic!("{:?}", r.uncertainty) };
    assert!((avg_pct - 0.4572).abs() < 1e-6, "{avg_pct}");
    assert_eq!(r.uncertainty.within(1.0), Some(true));
    // The WT333E starts in auto range: unknown, never a small number.
    let fake = FakePtd::start(Script { analyzer: Analyzer::Wt333e, ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let r = window(&sensor.windows(), "auto", 0.2);
    assert_eq!((r.uncertainty.status(), r.uncertainty.within(1.0)), ("unknown", None));
    // 0.9% average, 1.38% worst sample: above MLPerf's 1%.
    let fake = FakePtd::start(Script { uncertainty: 0.009, ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let r = window(&sensor.windows(), "high", 0.2);
    assert_eq!(r.uncertainty.within(1.0), Some(false), "{:?}", r.uncertainty);
}

#[test]
fn ptd_ranging_pass_sets_fixed_ranges_from_the_samples_and_restores_them() {
    let fake = FakePtd::start(Script { analyzer: Analyzer::Wt333e, ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let w = sensor.windows();
    w.auto_ranges().unwrap();
    let ranging = window(&w, "ranging", 0.3);
    assert_eq!(ranging.uncertainty.status(), "unknown");
    let (v, a) = w.fix_ranges(&ranging).unwrap();
    assert_eq!(v, 239.2);
    assert!((a - 1.1 * ranging.max_amps.unwrap()).abs() < 1e-9);
    let testing = window(&w, "testing", 0.3);
    assert_eq!(testing.uncertainty.status(), "known", "fixed ranges give a known uncertainty");
    w.restore_ranges().unwrap();
    drop((sensor, w));
    let srs: Vec<String> =
        fake.commands().iter().map(|c| c.trim_end().to_string()).filter(|c| c.starts_with("SR,")).collect();
    assert_eq!(srs[..2], ["SR,V,Auto", "SR,A,Auto"]);
    assert_eq!(srs[2], "SR,V,239.2");
    // Restored to the WT333E's ranges at connect: auto.
    assert_eq!(srs[4..], ["SR,V,Auto", "SR,A,Auto"], "{srs:?}");
}

#[test]
fn ptd_range_change_waits_longer_than_an_ordinary_reply() {
    // A real WT333E took 5-6 s to answer SR; the ordinary reply timeout here is 2 s.
    let fake = FakePtd::start(Script { sr_delay: Duration::from_millis(2500), ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let w = sensor.windows();
    w.set_range(Quantity::Volts, PtdRange::Value(120.0)).unwrap();
    drop((sensor, w));
}

#[test]
fn ptd_live_power_differences_the_running_average() {
    let fake = FakePtd::start(Script {
        profile: Profile::Step { before: 100.0, after: 400.0, at_s: 0.5 },
        ..Script::default()
    });
    let mut sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let w = sensor.windows();
    w.begin_window("live").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let Reading::Power(p) = sensor.read().unwrap() else { panic!() };
    // The running average would be ~290 W by now; the samples since the last poll are at 400.
    assert!(within(p.0, 400.0, 1.0), "{p:?}");
    w.end_window("live").unwrap();
}

#[test]
fn ptd_split_replies_and_mixed_line_endings_are_buffered() {
    let fake = FakePtd::start(Script { split: true, crlf_mix: true, ..Script::default() });
    let sensor =
        PtdSensor::connect(&fake.addr, PtdOptions { poll_interval: Duration::from_secs(60), ..fast() }).unwrap();
    let r = window(&sensor.windows(), "split", 0.3);
    assert!(r.samples.len() >= 10, "{}", r.samples.len());
    assert!(r.samples.iter().all(|s| s.watts == 100.0));
}

#[test]
fn ptd_error_replies_are_quoted() {
    let fake = FakePtd::start(Script { hello: "SSH-2.0-OpenSSH_9.6", ..Script::default() });
    let e = PtdSensor::connect(&fake.addr, fast()).err().unwrap().to_string();
    assert!(e.contains("SSH-2.0-OpenSSH_9.6") && e.contains("Hello, PTDaemon here!"), "{e}");

    let fake = FakePtd::start(Script { refuse: vec![("SR,A", "Error: range 7 not supported")], ..Script::default() });
    let opts = PtdOptions { current_range: Some(PtdRange::Value(7.0)), ..fast() };
    let e = PtdSensor::connect(&fake.addr, opts).err().unwrap().to_string();
    assert!(e.contains("SR,A,7") && e.contains("Error: range 7 not supported"), "{e}");

    let fake = FakePtd::start(Script { refuse: vec![("Watts", "Watts,abc")], ..Script::default() });
    let e = PtdSensor::connect(&fake.addr, fast()).err().unwrap().to_string();
    assert!(e.contains("\"Watts,abc\""), "{e}");

    let fake = FakePtd::start(Script { refuse: vec![("Go,", "Error: analyzer not ready")], ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let e = sensor.windows().begin_window("w").unwrap_err().to_string();
    assert!(e.contains("Go,20,0,w") && e.contains("Error: analyzer not ready"), "{e}");
    // A refused command leaves the connection usable.
    assert_eq!(sensor.windows().ranges().unwrap().volt_range, 150.0);
}

#[test]
fn ptd_stalled_daemon_times_out_within_bounds() {
    let short = PtdOptions { reply_timeout: Duration::from_millis(300), ..fast() };
    let fake = FakePtd::start(Script { stall_on: Some("Identify"), ..Script::default() });
    let t = Instant::now();
    let e = PtdSensor::connect(&fake.addr, short.clone()).err().unwrap().to_string();
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert!(e.contains("no complete reply to \"Identify\" within 0.3 s"), "{e}");

    let fake = FakePtd::start(Script { stall_on: Some("Stop"), ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, short).unwrap();
    let w = sensor.windows();
    w.begin_window("hang").unwrap();
    let t = Instant::now();
    let e = w.end_window("hang").unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert!(matches!(e, PtdError::Timeout { .. }), "{e}");
    // The connection is closed now; later calls fail fast and say why.
    let e = w.begin_window("next").unwrap_err().to_string();
    assert!(e.contains("unusable") && e.contains("Stop"), "{e}");
}

#[test]
fn ptd_daemon_closing_mid_reply_is_a_clean_error() {
    let fake = FakePtd::start(Script { close_on: Some("Identify"), ..Script::default() });
    let e = PtdSensor::connect(&fake.addr, fast()).err().unwrap().to_string();
    assert!(e.contains("connection closed") && e.contains("\"YOKO\""), "{e}");
}

#[test]
fn ptd_connect_refused_names_the_address() {
    // Bind then drop to get a port that (almost certainly) nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = PtdSensor::connect(&format!("127.0.0.1:{port}"), fast()).err().unwrap().to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")) && e.contains("cannot connect"), "{e}");
    let e = PtdSensor::connect("http://x:1", fast()).err().unwrap().to_string();
    assert!(e.contains("ptd://HOST:PORT"), "{e}");
}

#[test]
fn ptd_window_rules() {
    let fake = FakePtd::start(Script { refuse: vec![("Uncertainty", "Unknown command")], ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let w = sensor.windows();
    assert!(matches!(w.begin_window("a,b"), Err(PtdError::BadMark { .. })));
    assert!(w.end_window("x").unwrap_err().to_string().contains("no window is open"));
    w.begin_window("x").unwrap();
    assert!(w.begin_window("y").unwrap_err().to_string().contains("\"x\" is still open"));
    assert!(w.end_window("y").unwrap_err().to_string().contains("the open window is \"x\""));
    let r = w.end_window("x").unwrap();
    assert!(r.warnings.iter().any(|m| m.contains("no readable uncertainty")), "{:?}", r.warnings);
    assert_eq!(r.uncertainty.status(), "unavailable");
    assert!(w.begin_window("x").unwrap_err().to_string().contains("already used"));
}

#[test]
fn ptd_open_window_is_stopped_on_close() {
    let fake = FakePtd::start(Script::default());
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    sensor.windows().begin_window("abandoned").unwrap();
    drop(sensor);
    let seen = without_polls(&fake.commands());
    assert_eq!(seen.last().map(String::as_str), Some("Stop"), "{seen:?}");
}

#[test]
fn ptd_failed_poll_reaches_read() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Answers the handshake and the first Watts, then refuses Watts.
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut watts = 0;
        for line in BufReader::new(s).lines().take(200) {
            let Ok(line) = line else { break };
            let reply = match line.trim_end() {
                "Hello" => HELLO_REPLY.to_string(),
                "Identify" => "X".into(),
                "RR" => "Ranges,-1,-1.0,-1,-1.0".into(),
                "Watts" if watts == 0 => {
                    watts += 1;
                    "Watts,7.000000,7.000000,7.000000,4,0,4".into()
                }
                _ => "Error: no data from analyzer".into(),
            };
            if w.write_all(format!("{reply}\n").as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut sensor = PtdSensor::connect(&addr, fast()).unwrap();
    assert_eq!(sensor.read().unwrap(), Reading::Power(Watts(7.0)));
    let deadline = Instant::now() + Duration::from_secs(3);
    let e = loop {
        match sensor.read() {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(r) => panic!("still {r:?} after 3 s"),
        }
    };
    assert!(matches!(e, SensorError::Transient { .. }), "{e}");
    assert!(e.to_string().contains("Error: no data from analyzer"), "{e}");
    drop(sensor);
    server.join().unwrap();
}

#[test]
fn ptd_handles_are_thread_safe() {
    fn sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    sync::<PtdWindows>();
    send::<PtdSensor>();
}
