//! End-to-end: `effbench run --meter ptd://…` against the fake PTDaemon (`sensor::ptd::testing`).
//! The wall meter is the run's only energy source, every repeat's window is marked on the
//! analyzer (`Go` … `Stop` with a distinct mark) and its report lands in `wall_meter`; a meter
//! that cannot be reached stops the run before any work.

use std::process::Command;
use std::time::Duration;

use effbench::result::RunResult;
use effbench::sensor::ptd::testing::{FakePtd, Script, IDLE_W, SAMPLE_W};

#[test]
fn ptd_wall_meter_run_marks_every_repeat() {
    let sysfs = tempfile::tempdir().unwrap(); // empty: no RAPL or hwmon to interfere
    let out = tempfile::tempdir().unwrap();
    let fake = FakePtd::start(Script { lifetime: Duration::from_secs(300), ..Script::default() });
    let o = Command::new(env!("CARGO_BIN_EXE_effbench"))
        .env("EFFBENCH_SYSFS_ROOT", sysfs.path())
        .args(["run", "--workload", "ae-machine-train", "--repeat", "2", "--idle-secs", "0.5", "--peak-secs", "0"])
        .args(["--meter", &format!("ptd://{}", fake.addr), "--out", out.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    // The binary has exited, so its connection is closed and the server returns.
    let seen: Vec<String> = fake.commands().iter().map(|l| l.trim_end().to_string()).collect();

    let r = RunResult::load(&out.path().join("ae-machine-train.json")).unwrap();
    let sources: Vec<_> =
        r.energy_sources.iter().map(|s| (s.kind.as_str(), s.domain.as_str(), format!("{:?}", s.provenance))).collect();
    assert_eq!(sources, vec![("ptd", "system", "Measured".to_string())], "no estimate beside a wall meter");
    assert_eq!(r.repeats.len(), 2);

    let gos: Vec<&str> = seen.iter().filter(|c| c.starts_with("Go,")).map(String::as_str).collect();
    let stops = seen.iter().filter(|c| *c == "Stop").count();
    assert_eq!(gos.len(), 2, "one Go per repeat: {seen:?}");
    assert_eq!(stops, 2, "one Stop per repeat: {seen:?}");
    let go_marks: Vec<&str> = gos.iter().map(|g| g.splitn(4, ',').nth(3).unwrap()).collect();
    assert_ne!(go_marks[0], go_marks[1], "marks must be distinct: {gos:?}");

    for (rep, go_mark) in r.repeats.iter().zip(&go_marks) {
        let wall = rep.wall_meter.as_ref().unwrap_or_else(|| panic!("repeat {} has no wall_meter", rep.seed));
        assert_eq!(wall["mark"].as_str(), Some(*go_mark), "{wall}");
        // The fake logs `samples_per_window` samples at SAMPLE_W + i watts, one per 1 s period.
        let n = Script::default().samples_per_window;
        let joules: f64 = (0..n).map(|i| SAMPLE_W + i as f64).sum();
        assert!(n > 0);
        assert_eq!(wall["samples"].as_u64(), Some(n as u64), "{wall}");
        assert_eq!(wall["energy_j"].as_f64(), Some(joules), "{wall}");
        // Fewer than 60 analyzer samples: the short-window warning reaches the repeat, prefixed.
        assert!(
            rep.meter_warnings.iter().any(|w| w.starts_with("wall meter:") && w.contains(go_mark)),
            "{:?}",
            rep.meter_warnings
        );
        // Each Go is closed by a Stop before the next Go.
        let at = seen.iter().position(|c| c.ends_with(&format!(",{go_mark}"))).unwrap();
        assert!(seen[at + 1..].iter().take_while(|c| !c.starts_with("Go,")).any(|c| c == "Stop"), "{seen:?}");
        assert!(rep.energy_j.by_domain.keys().all(|d| d == "system"), "{:?}", rep.energy_j.by_domain);
        let avg = rep.energy_j.total.0 / rep.wall_s.0;
        assert!((avg - IDLE_W).abs() < 0.02 * IDLE_W, "repeat {}: {avg:.3} W, expected {IDLE_W} W", rep.seed);
        assert!((rep.avg_power_w.0 - IDLE_W).abs() < 0.02 * IDLE_W, "repeat {}: {:?}", rep.seed, rep.avg_power_w);
    }
}

#[test]
fn ptd_unreachable_meter_fails_before_any_work() {
    let sysfs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_effbench"))
        .env("EFFBENCH_SYSFS_ROOT", sysfs.path())
        .args(["run", "--workload", "ae-machine-train", "--repeat", "2", "--idle-secs", "0.5", "--peak-secs", "0"])
        .args(["--meter", "ptd://127.0.0.1:1", "--out", out.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "the error must name the address: {stderr}");
    assert!(!out.path().join("ae-machine-train.json").exists(), "no result file");
    let files: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(files.is_empty(), "nothing written: {files:?}");
}
