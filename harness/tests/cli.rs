//! End-to-end tests of the `effbench` binary: real workloads (the small ones), real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use effbench::result::RunResult;

fn effbench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_effbench"));
    c.env_remove("RAYON_NUM_THREADS").env_remove("EFFBENCH_BACKEND");
    c.env("EFFBENCH_STORE", "none"); // no test records into the working directory's store
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("effbench-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    effbench().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `run` with the fast settings tests use.
fn quick_run(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--idle-secs", "0.2", "--peak-secs", "0", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn list_json_names_every_workload_with_its_kind() {
    let o = run(&["list", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = v.as_array().unwrap();
    assert!(items.len() >= 9);
    for id in ["digits-mlp-train", "fmnist-mlp-train", "fmnist-cnn-train", "charlm-austen-train", "ae-machine-train"] {
        let w = items.iter().find(|w| w["id"] == id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(w["kind"], "train");
        assert!(w["recipes"].as_array().unwrap().iter().any(|r| r == "baseline"));
    }
    for id in ["fmnist-mlp-infer", "fmnist-cnn-infer", "charlm-austen-infer", "ae-machine-infer"] {
        assert!(items.iter().any(|w| w["id"] == id && w["kind"] == "infer"), "{id}");
    }
}

#[test]
fn run_writes_a_valid_result_with_estimated_energy_and_a_trace() {
    let out = tmp("ok");
    let o = quick_run(&out, &["--workload", "digits-mlp-train", "--repeat", "2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = RunResult::load(&out.join("digits-mlp-train.json")).unwrap();
    assert_eq!(r.schema, "effbench.result/2");
    assert_eq!(r.repeats.len(), 2);
    assert!(r.repeats.iter().all(|x| x.valid && x.samples_to_target.is_some() && x.energy_j.total.0 > 0.0));
    assert_eq!(r.repeats.iter().map(|x| x.seed).collect::<Vec<_>>(), vec![0, 1]);
    assert!(r.energy_sources.iter().all(|s| format!("{:?}", s.provenance) == "Estimated"));
    assert!(r.summary.contains_key("samples_to_target"));
    let stdout = text(&o.stdout);
    assert!(stdout.contains("ESTIMATED"), "{stdout}");
    let trace = std::fs::read_to_string(out.join("digits-mlp-train.trace.csv")).unwrap();
    assert!(trace.starts_with("t_s,phase,"), "{trace}");
    assert!(trace.contains(",repeat-1,"));
}

#[test]
fn phases_run_in_order_peak_idle_then_repeats() {
    let out = tmp("order");
    let o = run(&[
        "run",
        "--idle-secs",
        "0.1",
        "--peak-secs",
        "0.1",
        "--out",
        out.to_str().unwrap(),
        "--workload",
        "digits-mlp-train",
        "--repeat",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    let at = |s: &str| err.find(s).unwrap_or_else(|| panic!("{s:?} not in {err}"));
    assert!(at("GEMM peak") < at("idle window"));
    assert!(at("idle window") < at("digits-mlp-train: 1 repeat"));
    assert!(at("digits-mlp-train: 1 repeat") < at("seed 0:"));
    let r = RunResult::load(&out.join("digits-mlp-train.json")).unwrap();
    let f = r.repeats[0].fraction_of_peak.unwrap();
    assert!(f > 0.0 && f < 1.5, "fraction of peak {f}");
}

#[test]
fn fake_measured_power_is_reported_within_two_percent() {
    let out = tmp("fake");
    let o = quick_run(&out, &["--workload", "ae-machine-train", "--repeat", "1", "--fake-power", "40"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = RunResult::load(&out.join("ae-machine-train.json")).unwrap();
    let rep = &r.repeats[0];
    assert!((rep.avg_power_w.0 - 40.0).abs() < 0.8, "avg power {}", rep.avg_power_w.0);
    assert!((rep.energy_j.total.0 - 40.0 * rep.wall_s.0).abs() < 0.02 * rep.energy_j.total.0);
    // idle power was the same 40 W, so nothing is dynamic
    assert!(rep.dynamic_energy_j.total.0.abs() < 0.02 * rep.energy_j.total.0);
    assert!(!text(&o.stdout).contains("ESTIMATED"));
}

#[test]
fn inference_checks_its_answers_and_reports_bytes_per_query() {
    let out = tmp("infer");
    let o = quick_run(&out, &["--workload", "fmnist-mlp-infer-b250", "--repeat", "1", "--min-window-secs", "0.2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = RunResult::load(&out.join("fmnist-mlp-infer-b250.json")).unwrap();
    let rep = &r.repeats[0];
    assert!(rep.valid && rep.units_processed >= 1000 && rep.units_processed.is_multiple_of(1000));
    assert_eq!(rep.bytes_per_unit.unwrap().0, 784 * 4 + 10 * 4);
    assert_eq!(rep.batch_size, Some(250));
    assert!(rep.quality.unwrap() >= r.workload.quality_target);
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let out = tmp("bad");
    let o = quick_run(&out, &["--workload", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("valid ids") && text(&o.stderr).contains("fmnist-mlp-train"));

    let o = quick_run(&out, &["--workload", "digits-mlp-train", "--recipe", "turbo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("baseline"), "{}", text(&o.stderr));

    let bad = out.join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\noptimizer = \"adamw\"\nlearning_rate = = 1\n").unwrap();
    let o = quick_run(&out, &["--workload", "digits-mlp-train", "--recipe", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("bad.toml:3:"), "{}", text(&o.stderr));

    let o = quick_run(&out, &["--workload", "digits-mlp-train", "--backend", "cuda:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--features cuda"), "{}", text(&o.stderr));

    let o = quick_run(&out, &["--workload", "digits-mlp-train", "--backend", "tpu"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn unwritable_out_fails_before_any_work() {
    let file = tmp("unwritable").join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let start = Instant::now();
    let o = run(&["run", "--workload", "fmnist-mlp-train", "--out", file.join("sub").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--out"), "{}", text(&o.stderr));
    // no idle window (5 s by default) and no training happened
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn a_missed_target_marks_the_repeat_invalid_writes_the_file_and_exits_4() {
    let out = tmp("invalid");
    let recipe = out.join("capped.toml");
    std::fs::write(
        &recipe,
        "name = \"capped\"\noptimizer = \"adamw\"\nlearning_rate = 1e-3\nbatch_size = 32\n[evaluation]\nsample_cap = 320\n",
    )
    .unwrap();
    let o = quick_run(&out, &["--workload", "digits-mlp-train", "--repeat", "2", "--recipe", recipe.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    let r = RunResult::load(&out.join("digits-mlp-train.json")).unwrap();
    assert_eq!(r.repeats.len(), 2);
    assert!(r.repeats.iter().all(|x| !x.valid && x.invalid_reason.as_deref().unwrap().contains("not reached")));
    assert_eq!(r.recipe.name, "capped");
}

#[test]
fn a_killed_run_keeps_every_finished_repeat() {
    let out = tmp("kill");
    let mut child = effbench()
        .args(["run", "--idle-secs", "0", "--peak-secs", "0", "--workload", "digits-mlp-train", "--repeat", "500"])
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let path = out.join("digits-mlp-train.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no repeat finished in time");
        if let Ok(r) = RunResult::load(&path) {
            if r.repeats.len() >= 2 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let r = RunResult::load(&path).expect("the file must be complete JSON after a kill");
    assert!(r.repeats.len() >= 2 && r.repeats.len() < 500);
    assert!(r.repeats.iter().all(|x| x.valid));
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().filter_map(|e| e.ok()).collect();
    assert!(leftovers.len() <= 4, "{leftovers:?}");
}
