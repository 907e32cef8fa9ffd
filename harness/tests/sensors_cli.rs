//! `effbench sensors` and the run flags that choose energy sources, end to end.

use std::process::Command;

use effbench::result::RunResult;
use effbench::sensor::sysfs::testing::FakeTree;

fn effbench(root: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_effbench"));
    c.env("EFFBENCH_SYSFS_ROOT", root).env_remove("EFFBENCH_METER").env_remove("EFFBENCH_POWER_COMMAND");
    c.env("EFFBENCH_STORE", "none");
    c
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("effbench-sensors-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn sensors_json_lists_found_and_missing_sources_with_status() {
    let root = tmp("tree");
    let tree = FakeTree::new(&root);
    tree.rapl_zone("intel-rapl:0", "package-0", 262_143_328_850, 1_000).unwrap();
    tree.rapl_zone("intel-rapl:0:0", "core", 262_143_328_850, 500).unwrap();
    let o = effbench(&root).args(["sensors", "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = v.as_array().unwrap();
    let find = |id: &str| items.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id} missing: {v:#}"));
    assert_eq!(find("rapl:package-0")["status"], "ok");
    assert_eq!(find("rapl:package-0")["domains"][0], "cpu");
    assert_eq!(find("rapl:package-0:core")["status"], "unavailable", "core is part of the package, not summed");
    assert_eq!(find("nvml")["status"], "unavailable");
    // RAPL measures the cpu, so no estimate is offered
    assert!(items.iter().all(|c| c["kind"] != "estimate"), "{v:#}");
}

#[test]
fn without_sensors_the_estimate_is_listed_and_require_measured_exits_4_before_work() {
    let root = tmp("empty");
    let o = effbench(&root).args(["sensors"]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("estimated") && text.contains("no measured source for: cpu"), "{text}");
    let out = root.join("out");
    let o = effbench(&root)
        .args(["run", "--workload", "fmnist-mlp-train", "--require-measured", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("effbench sensors"));
    assert!(!out.join("fmnist-mlp-train.json").exists(), "no work may start");
}

#[test]
fn a_power_command_for_the_wall_is_the_run_total_labelled_vendor_reported() {
    let root = tmp("cmd");
    let out = root.join("out");
    let o = effbench(&root)
        .args(["run", "--workload", "ae-machine-train", "--repeat", "1", "--idle-secs", "0.3", "--peak-secs", "0"])
        .args(["--power-command", "echo 30 W", "--power-command-domain", "system", "--require-measured"])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = RunResult::load(&out.join("ae-machine-train.json")).unwrap();
    let rep = &r.repeats[0];
    assert!((rep.avg_power_w.0 - 30.0).abs() < 0.6, "avg {} W", rep.avg_power_w.0);
    let sources: Vec<_> = r.energy_sources.iter().map(|s| (s.kind.clone(), s.domain.clone())).collect();
    assert_eq!(sources, vec![("command".to_string(), "system".to_string())]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("vendor-reported"));
}

#[test]
fn power_command_unit_and_stream_mode_reach_the_sensor() {
    let root = tmp("cmd-modes");
    let sensors = |extra: &[&str]| {
        let o = effbench(&root).args(["sensors", "--json"]).args(extra).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array().unwrap().iter().find(|c| c["kind"] == "command").cloned().unwrap_or_else(|| panic!("{v:#}"))
    };
    // A bare number read as cumulative millijoules, run every 0.5 s.
    let c = sensors(&["--power-command", "echo 1234", "--power-command-unit", "mJ", "--power-command-interval", "0.5"]);
    assert_eq!(c["status"], "ok", "{c:#}");
    assert_eq!(c["detail"]["unit"], "mJ");
    assert_eq!(c["detail"]["mode"], "one-shot every 0.5 s");
    // A streaming tool that prints one line a tenth of a second.
    let c = sensors(&[
        "--power-command",
        "while true; do echo 7.5; sleep 0.1; done",
        "--power-command-mode",
        "stream",
        "--power-command-domain",
        "gpu:0",
    ]);
    assert_eq!(c["status"], "ok", "{c:#}");
    assert_eq!(c["detail"]["mode"], "stream");
    assert_eq!(c["domains"][0], "gpu:0");
    // A unit that does not exist is bad input, exit 2.
    let o =
        effbench(&root).args(["sensors", "--power-command", "echo 1", "--power-command-unit", "kW"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("auto, W, mW, J, mJ, uJ"));
}
