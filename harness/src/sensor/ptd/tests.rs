//! Unit tests against the scripted fake PTDaemon in [`super::testing`].

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::testing::*;
use super::*;

fn fast() -> PtdOptions {
    PtdOptions {
        connect_timeout: Duration::from_secs(2),
        // Generous: the CI machine is shared; only the stall tests use a short timeout.
        reply_timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(20),
        ..PtdOptions::default()
    }
}

/// The commands without their line ending, background `Watts` polls left out.
fn without_polls(seen: &[String]) -> Vec<String> {
    seen.iter().map(|l| l.trim_end().to_string()).filter(|c| c != "Watts").collect()
}

#[test]
fn ptd_full_sequence_seen_by_server() {
    let fake = FakePtd::start(Script::default());
    let opts = PtdOptions { voltage_range: Some(PtdRange::Auto), current_range: Some(PtdRange::Value(2.0)), ..fast() };
    let mut sensor = PtdSensor::connect(&format!("ptd://{}", fake.addr), opts).unwrap();
    let info = sensor.info();
    assert_eq!((info.kind.as_str(), info.domain.as_str(), info.provenance), ("ptd", "system", Provenance::Measured));
    assert_eq!(info.id, format!("ptd:{}", fake.addr));
    assert_eq!(info.detail["identity"], "YOKOGAWA,WT310,TEST,F1.03");
    assert_eq!(sensor.read().unwrap(), Reading::Power(Watts(IDLE_W)));

    let windows = sensor.windows();
    windows.begin_window("base_1").unwrap();
    let report = windows.end_window("base_1").unwrap();
    assert_eq!(report.samples.len(), 3);
    assert!(report.samples.iter().all(|s| s.mark == "base_1"));
    // 100 + 101 + 102 W, 1 s each.
    assert_eq!(report.energy, Some(Joules(303.0)));
    assert_eq!(report.duration, Seconds(3.0));
    assert_eq!(report.max_volts, Some(230.2));
    assert_eq!(report.uncertainty_pct, Some(0.2));
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("fewer than 60"), "{:?}", report.warnings);
    drop(sensor);
    drop(windows);

    let seen = fake.commands();
    assert!(seen.iter().all(|l| l.ends_with("\r\n")), "{seen:?}");
    assert!(seen.iter().any(|l| l == "Watts\r\n"), "the poller never asked for Watts: {seen:?}");
    let expected = [
        "Hello",
        "Identify",
        "RR",
        "SR,V,Auto",
        "SR,A,2",
        "Go,1000,0,base_1",
        "Stop",
        "Uncertainty",
        "RL,*,*",
        // Ranges at connect (Ranges,0,2.0,0,300.0) are restored on close.
        "SR,V,300",
        "SR,A,2",
    ];
    assert_eq!(without_polls(&seen), expected);
}

#[test]
fn ptd_split_replies_and_mixed_line_endings_are_buffered() {
    let fake = FakePtd::start(Script { split: true, crlf_mix: true, ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let w = sensor.windows();
    w.begin_window("split").unwrap();
    let report = w.end_window("split").unwrap();
    assert_eq!(report.energy, Some(Joules(303.0)));
    assert_eq!(report.uncertainty_reply.as_deref(), Some("Uncertainty,0.20"));
    assert_eq!(report.samples[2].time, "11-25-2026 17:00:02.000");
    assert_eq!(sensor.info().detail["identity"], "YOKOGAWA,WT310,TEST,F1.03");
}

#[test]
fn ptd_rl_falls_back_to_rl_then_dc_rl_and_remembers() {
    for (mode, first, second) in [
        (RlAccepts::PlainRl, vec!["RL,*,*", "RL"], vec!["RL"]),
        (RlAccepts::DcRl, vec!["RL,*,*", "RL", "DC-RL"], vec!["DC-RL"]),
    ] {
        let fake = FakePtd::start(Script { rl: mode, ..Script::default() });
        let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
        let w = sensor.windows();
        for mark in ["a", "b"] {
            w.begin_window(mark).unwrap();
            let r = w.end_window(mark).unwrap();
            assert_eq!(r.samples.len(), 3, "{mode:?}");
        }
        drop((sensor, w));
        let rls: Vec<String> = without_polls(&fake.commands()).into_iter().filter(|c| c.contains("RL")).collect();
        let expected: Vec<&str> = first.iter().chain(&second).copied().collect();
        assert_eq!(rls, expected, "{mode:?}");
    }
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

    let fake = FakePtd::start(Script {
        refuse: vec![("Go,", "Error: analyzer not ready"), ("Watts", "Watts,abc")],
        ..Script::default()
    });
    let e = PtdSensor::connect(&fake.addr, fast()).err().unwrap().to_string();
    assert!(e.contains("\"Watts,abc\""), "{e}");

    let fake = FakePtd::start(Script { refuse: vec![("Go,", "Error: analyzer not ready")], ..Script::default() });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let e = sensor.windows().begin_window("w").unwrap_err().to_string();
    assert!(e.contains("Go,1000,0,w") && e.contains("Error: analyzer not ready"), "{e}");
    // A refused command leaves the connection usable.
    assert_eq!(sensor.windows().ranges().unwrap().volt_range, 300.0);
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
fn ptd_log_errors_other_marks_and_high_uncertainty_become_warnings() {
    let fake = FakePtd::start(Script {
        uncertainty: "Uncertainty,1.50",
        extra_log: vec![
            "Time,11-25-2026 17:00:09.000,ERROR,Bad volts reading nan from WT310",
            "Time,11-25-2026 17:00:10.000,Watts,5.0,Volts,230,Amps,0.1,PF,0.9,Mark,other",
            "garbage line",
        ],
        samples_per_window: 60,
        ..Script::default()
    });
    let sensor = PtdSensor::connect(&fake.addr, fast()).unwrap();
    let w = sensor.windows();
    w.begin_window("long").unwrap();
    let r = w.end_window("long").unwrap();
    assert_eq!(r.samples.len(), 60);
    let expected: f64 = (0..60).map(|i| SAMPLE_W + f64::from(i)).sum();
    assert_eq!(r.energy, Some(Joules(expected)));
    let all = r.warnings.join("\n");
    assert_eq!(r.warnings.len(), 4, "{all}");
    assert!(all.contains("1.50% is above the 1.00% limit"), "{all}");
    assert!(all.contains("Bad volts reading nan from WT310"), "{all}");
    assert!(all.contains("1 sample(s) read back carried another mark"), "{all}");
    assert!(all.contains("\"garbage line\""), "{all}");
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
    assert!(r.warnings.iter().any(|m| m.contains("gave no uncertainty")), "{:?}", r.warnings);
    assert_eq!(r.uncertainty_pct, None);
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
                    "7.0".into()
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
