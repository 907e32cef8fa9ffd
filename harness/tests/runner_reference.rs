//! The reference runner (runners/reference: onnxruntime on the CPU) through the real binary:
//! the conformance example CI runs. Needs the runner's venv: `bash runners/reference/setup.sh`.
//!
//! `every_inference_workload_through_the_reference_runner` uses effbench's own ONNX export
//! (`effbench_models::onnx::export`); the hand-made-MLP test below does not, so it proves the
//! reference runner and the output check independently of the export.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use effbench::result::RunResult;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn venv_python() -> PathBuf {
    let p = repo().join("runners/reference/.venv/bin/python");
    assert!(p.exists(), "{} is missing: run `bash runners/reference/setup.sh` first", p.display());
    p
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("effbench-refrunner-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(out: &Path, workloads: &[&str], env: &[(&str, &str)]) -> Output {
    venv_python();
    let mut c = Command::new(env!("CARGO_BIN_EXE_effbench"));
    c.env_remove("RAYON_NUM_THREADS").env_remove("EFFBENCH_BACKEND").env_remove("EFFBENCH_TEST_RUNNER_MODEL");
    c.env("EFFBENCH_STORE", "none");
    for (k, v) in env {
        c.env(k, v);
    }
    let backend = format!("external:{}", repo().join("runners/reference/runner.toml").display());
    c.args(["run", "--backend", &backend, "--repeat", "1", "--idle-secs", "0", "--peak-secs", "0"]);
    c.args(["--fake-power", "10", "--min-window-secs", "0.05", "--out", out.to_str().unwrap()]);
    for w in workloads {
        c.args(["--workload", w]);
    }
    c.output().unwrap()
}

fn assert_checked_valid(out: &Path, workload: &str) {
    let r = RunResult::load(&out.join(format!("{workload}.json"))).unwrap();
    assert_eq!(r.backend.kind, "external");
    assert!(r.backend.device.contains("CPUExecutionProvider"), "{}", r.backend.device);
    assert_eq!(r.backend.precision, "f32");
    for rep in &r.repeats {
        assert!(rep.valid, "{workload}: {:?}", rep.invalid_reason);
        let run = rep.runner.as_ref().expect("runner fields");
        assert!(run.max_rel_error <= 1e-4, "{workload}: {}", run.max_rel_error);
        let busy = run.busy_s.expect("the reference runner reports busy time").0;
        assert!(busy > 0.0 && busy < rep.wall_s.0, "{workload}: busy {busy} wall {}", rep.wall_s.0);
        assert!(run.h2d_bytes.is_some_and(|b| b.0 > 0) && run.d2h_bytes.is_some_and(|b| b.0 > 0));
        // The same answers within f32 rounding score the same: accuracy exactly, a loss or an
        // AUC to within rounding of the last digits.
        let q = rep.quality.expect("quality");
        assert!(
            (q - run.reference_quality).abs() <= 1e-6 * run.reference_quality.abs().max(1.0),
            "{workload}: f32 answers score {q} where effbench's own score {}",
            run.reference_quality
        );
    }
}

/// Every inference workload, exported by effbench (models/src/onnx), through onnxruntime.
#[test]
fn every_inference_workload_through_the_reference_runner() {
    let out = tmp("all");
    let workloads = [
        "fmnist-mlp-infer",
        "fmnist-mlp-infer-b250",
        "fmnist-cnn-infer",
        "fmnist-cnn-infer-b250",
        "charlm-austen-infer",
        "charlm-austen-infer-b250",
        "ae-machine-infer",
        "ae-machine-infer-b250",
    ];
    let o = run(&out, &workloads, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for w in workloads {
        assert_checked_valid(&out, w);
    }
}

/// The reference runner on an MLP graph built with the `onnx` package from the shipped
/// weights (fixtures/runners/mlp_onnx.py), handed over by the test-only model hook.
#[test]
fn reference_runner_on_a_handmade_onnx_mlp_matches_effbench() {
    let out = tmp("handmade");
    let model = out.join("mlp.onnx");
    let st = Command::new(venv_python())
        .arg(repo().join("harness/tests/fixtures/runners/mlp_onnx.py"))
        .arg(repo().join("models/weights/fmnist-mlp.safetensors"))
        .arg(&model)
        .status()
        .unwrap();
    assert!(st.success());
    let hook = format!("onnx-file:{}", model.display());
    let o = run(&out, &["fmnist-mlp-infer", "fmnist-mlp-infer-b250"], &[("EFFBENCH_TEST_RUNNER_MODEL", &hook)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_checked_valid(&out, "fmnist-mlp-infer");
    assert_checked_valid(&out, "fmnist-mlp-infer-b250");
}
