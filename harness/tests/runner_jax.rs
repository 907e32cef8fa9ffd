//! The JAX reference training runner (runners/jax: JAX + optax on the CPU) through the real
//! binary and Runner Protocol v1.1 (issue 15, item 3): CI trains digits-mlp-train and
//! fmnist-mlp-train through it, and `compare` judges the result against the shipped candle
//! baseline. Needs the runner's venv: `bash runners/setup.sh` (or `runners/jax/setup.sh`).
//!
//! What must hold: every count is effbench's own (samples to target is the first evaluation
//! effbench scored that met the target; bytes are effbench's bytes per sample times the
//! samples it served), the runner's reference model has the reference parameter count (it
//! declares the closed division), and grouping batches into one fetch never moves an
//! evaluation: each one lands within one batch after a multiple of `every_samples`, where the
//! candle loop evaluates.

use std::path::Path;
use std::process::Output;

use effbench::result::RunResult;

mod util;

use util::{both, effbench, output_within, repo};

/// (workload, every_samples, batch size, stored bytes per sample, training samples)
const CASES: [(&str, u64, u64, u64, u64); 2] =
    [("digits-mlp-train", 320, 32, 65, 1437), ("fmnist-mlp-train", 2048, 64, 785, 10_000)];

fn venv_ready() -> bool {
    let py = repo().join("runners/jax/.venv/bin/python");
    util::tool_present("the JAX runner's venv", py.exists(), "run `bash runners/setup.sh`")
}

fn train(out: &Path) -> Output {
    let backend = format!("external:{}", repo().join("runners/jax/runner.toml").display());
    let mut c = effbench();
    c.args(["run", "--backend", &backend, "--repeat", "2", "--idle-secs", "0", "--peak-secs", "0"]);
    c.args(["--fake-power", "10", "--out", out.to_str().unwrap()]);
    for (w, ..) in CASES {
        c.args(["--workload", w]);
    }
    // XLA compiles each model once at start-up (8-30 s on a busy 2-core machine).
    output_within(&mut c, 600, "effbench run through the JAX runner")
}

fn check(r: &RunResult, every: u64, batch: u64, bytes_per: u64, train_len: u64) {
    let w = &r.workload.id;
    assert_eq!(r.backend.kind, "external", "{w}");
    assert_eq!(r.backend.division.as_deref(), Some("closed"), "{w}");
    assert!(r.backend.device.contains("XLA"), "{w}: {}", r.backend.device);
    for (k, rep) in r.repeats.iter().enumerate() {
        assert!(rep.valid, "{w} repeat {k}: {:?}", rep.invalid_reason);
        let s = rep.samples_to_target.expect("samples to target");
        let evals = rep.evaluations.as_ref().expect("evaluations");
        let met: Vec<_> = evals.iter().filter(|e| e.quality >= r.workload.quality_target).collect();
        assert_eq!(met.len(), 1, "{w} repeat {k}: training goes on after the target: {evals:?}");
        assert_eq!(evals.last().unwrap().samples, s, "{w} repeat {k}");
        for (i, e) in evals.iter().enumerate() {
            let boundary = (i as u64 + 1) * every;
            assert!(
                e.samples >= boundary && e.samples < boundary + batch,
                "{w} repeat {k}: evaluation {i} at {} samples, not within a batch after {boundary}",
                e.samples
            );
        }
        assert_eq!(rep.bytes_to_target.unwrap().0, s * bytes_per, "{w} repeat {k}");
        let unique = rep.unique_samples.expect("unique samples");
        assert!(unique > 0 && unique <= s.min(train_len), "{w} repeat {k}: {unique} unique of {s}");
        let t = rep.runner_train.as_ref().expect("runner_train");
        assert_eq!(t.division, "closed");
        assert_eq!(t.params, Some(t.reference_params), "{w}: the closed division's model");
        assert_eq!(t.evaluations, evals.len() as u64, "{w} repeat {k}");
        // Whole batches grouped into one fetch: far fewer fetches than steps.
        assert!(t.fetches < s / batch / 2, "{w} repeat {k}: {} fetches for {s} samples", t.fetches);
    }
}

#[test]
fn digits_and_fmnist_train_through_the_jax_runner() {
    if !venv_ready() {
        return;
    }
    let dir = util::tempdir("jax-train");
    let out = dir.path().join("res");
    let o = train(&out);
    assert!(o.status.success(), "{}", both(&o));
    for (w, every, batch, bytes_per, train_len) in CASES {
        let r = RunResult::load(&out.join(format!("{w}.json"))).unwrap();
        assert_eq!(r.repeats.len(), 2, "{w}");
        check(&r, every, batch, bytes_per, train_len);
    }
    // `compare` judges the runner's result against the candle baseline, with the warning
    // that the backends differ: a verdict on the data (met, not met or inconclusive), not a
    // usage error (exit 2). Energy is incomparable here (exit 4): the test meters a fake
    // power, the baseline's energy is an estimate.
    let base = repo().join("baselines/cpu-amd-epyc-2t/fmnist-mlp-train.json");
    let cand = out.join("fmnist-mlp-train.json");
    let o =
        effbench().args(["compare", "--baseline", base.to_str().unwrap(), cand.to_str().unwrap()]).output().unwrap();
    let text = both(&o);
    assert!(matches!(o.status.code(), Some(0 | 1 | 3 | 4)), "{text}");
    let data = text.lines().find(|l| l.starts_with("data      samples_to_target")).unwrap_or_else(|| panic!("{text}"));
    assert!(data.contains("met") || data.contains("inconclusive"), "{text}");
    assert!(text.contains("backends differ"), "{text}");
}

/// The runner's own tests (recipe maths against candle's, models' shapes and initialisation,
/// every workload's tensors through its protocol driver), run with the venv's python.
#[test]
fn the_jax_runners_own_tests_pass() {
    if !venv_ready() {
        return;
    }
    let dir = repo().join("runners/jax");
    let mut c = std::process::Command::new(dir.join(".venv/bin/python"));
    c.args(["-m", "unittest", "discover", "-s", ".", "-p", "test_*.py"]).current_dir(&dir);
    let o = output_within(&mut c, 900, "runners/jax unittest");
    assert!(o.status.success(), "{}", both(&o));
}
