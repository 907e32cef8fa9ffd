//! `effbench compare` end to end on real runs: an efficient recipe against the baseline, a
//! result against itself, and bad input. 8 repeats a side, for margin: with 5, the efficient
//! recipe's ~65% cut in samples has an interval of about [60%, 71%] on this machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn effbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_effbench"))
        .env("EFFBENCH_STORE", "none")
        .env("EFFBENCH_SYSFS_ROOT", std::env::temp_dir().join("effbench-no-sysfs"))
        .args(args)
        .output()
        .unwrap()
}

fn subset() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/data/fashion-mnist-subset").display().to_string()
}

fn run(dir: &Path, recipe: &str) -> PathBuf {
    let out = dir.join(recipe);
    let o = effbench(&[
        "run",
        "--workload",
        "fmnist-mlp-train",
        "--recipe",
        recipe,
        "--repeat",
        "8",
        "--idle-secs",
        "0.2",
        "--peak-secs",
        "0",
        "--data-dir",
        &subset(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.join("fmnist-mlp-train.json")
}

#[test]
fn efficient_meets_the_data_target_and_a_result_against_itself_does_not() {
    let dir = std::env::temp_dir().join(format!("effbench-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = run(&dir, "baseline");
    let eff = run(&dir, "efficient");
    let (b, e) = (base.to_str().unwrap(), eff.to_str().unwrap());

    let md = dir.join("pr.md");
    let o =
        effbench(&["compare", e, "--baseline", b, "--resources", "data", "--json", "--markdown", md.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["overall"]["verdict"], "met", "{v:#}");
    assert_eq!(o.status.code(), Some(0));
    let row = v["rows"].as_array().unwrap().iter().find(|r| r["metric"] == "samples_to_target").unwrap();
    let ci = row["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() >= 0.5 && ci[0].as_f64() <= ci[1].as_f64(), "{row:#}");
    assert!(std::fs::read_to_string(&md).unwrap().contains("| data |"));

    // the same file on both sides: no reduction, so not met (exit 1)
    let o = effbench(&["compare", b, "--baseline", b]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ESTIMATED"));

    // bad input: exit 2 with the file named
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let o = effbench(&["compare", bad.to_str().unwrap(), "--baseline", b]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.json"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn baseline_record_writes_once_and_refuses_to_overwrite_without_force() {
    let dir = std::env::temp_dir().join(format!("effbench-baselines-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let record = |extra: &[&str]| {
        let mut args = vec!["baseline", "record", "--workload", "digits-mlp-train", "--system", "test-box", "--dir", d];
        args.extend_from_slice(&["--idle-secs", "0.1"]);
        args.extend_from_slice(extra);
        effbench(&args)
    };
    let o = record(&["--repeat", "3"]);
    assert_eq!(o.status.code(), Some(2), "fewer than 5 repeats is refused");
    let o = record(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = dir.join("test-box/digits-mlp-train.json");
    let first = effbench::result::RunResult::load(&path).unwrap();
    assert_eq!(first.repeats.len(), 5);
    assert!(first.command.iter().any(|a| a == "record"), "the file states the command that made it");
    let o = record(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(effbench::result::RunResult::load(&path).unwrap().created_at, first.created_at, "untouched");
    let o = record(&["--force"]);
    assert!(o.status.success());
    assert_ne!(effbench::result::RunResult::load(&path).unwrap().created_at, first.created_at);
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("test-box")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no staging folder left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
