//! Training through a runner (Runner Protocol v1.1, issue 15), through the real binary and a
//! real runner process: runners/template/runner.py, whose stand-in model (a memorising
//! nearest-neighbour classifier, Python standard library only) reaches digits-mlp-train's
//! target, and which misbehaves on purpose with `TEMPLATE_HOSTILE=<mode>` (issue 15, item 5);
//! and runners/torch-template/runner.py's message loop with its torch model replaced by a fake
//! (harness/tests/fixtures/runners/torch_fake.py), so no PyTorch is needed.
//!
//! What must hold: effbench alone counts samples, bytes and samples to target; a runner that
//! misbehaves is stopped with an error naming it (exit 2 before any repeat, 5 once one began,
//! finished repeats kept) or its repeat is invalid with the reason (exit 4).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use effbench::result::RunResult;

mod util;

use util::repo;

const WORKLOAD: &str = "digits-mlp-train";

fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("effbench-train-{name}-")).tempdir().unwrap()
}

/// A runner TOML for the template runner in `mode` (empty: conformant).
fn toml(dir: &Path, mode: &str, timeout_s: f64) -> PathBuf {
    toml_env(dir, mode, timeout_s, "")
}

/// The same with more environment for the runner (`, KEY = "value"` pairs).
fn toml_env(dir: &Path, mode: &str, timeout_s: f64, env: &str) -> PathBuf {
    let script = repo().join("runners/template/runner.py");
    let p = dir.join("runner.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"train-{mode}\"\ncommand = [\"python3\", \"{}\"]\ntimeout_s = {timeout_s}\nstartup_timeout_s = 30\n\
             env = {{ TEMPLATE_HOSTILE = \"{mode}\"{env} }}\n",
            script.display()
        ),
    )
    .unwrap();
    p
}

struct Ran {
    out: Output,
    dir: PathBuf,
}

impl Ran {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    fn result(&self) -> RunResult {
        RunResult::load(&self.dir.join(format!("{WORKLOAD}.json"))).unwrap()
    }
}

fn run(dir: &Path, toml: &Path, repeats: &str, recipe: Option<&Path>) -> Ran {
    let mut c = Command::new(env!("CARGO_BIN_EXE_effbench"));
    c.env_remove("RAYON_NUM_THREADS").env_remove("EFFBENCH_BACKEND").env("EFFBENCH_STORE", "none");
    let backend = format!("external:{}", toml.display());
    let out_dir = dir.join("out");
    c.args(["run", "--backend", &backend, "--workload", WORKLOAD, "--repeat", repeats]);
    c.args(["--idle-secs", "0", "--peak-secs", "0", "--fake-power", "10"]);
    if let Some(r) = recipe {
        c.args(["--recipe", r.to_str().unwrap()]);
    }
    c.args(["--out", out_dir.to_str().unwrap()]);
    Ran { out: c.output().unwrap(), dir: out_dir }
}

fn hostile(mode: &str, repeats: &str, timeout_s: f64) -> (Ran, tempfile::TempDir) {
    let dir = tmp(mode);
    let t = toml(dir.path(), mode, timeout_s);
    (run(dir.path(), &t, repeats, None), dir)
}

fn assert_failed(r: &Ran, code: i32, mode: &str, what: &[&str]) {
    let e = r.stderr();
    assert_eq!(r.code(), Some(code), "{e}");
    assert!(e.contains(&format!("runner \"train-{mode}\"")), "{e}");
    for w in what {
        assert!(e.contains(w), "expected {w:?} in: {e}");
    }
}

/// The template's log line at each repeat's end: how many distinct batch file paths it read.
fn batch_paths(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.split("batch files at ").nth(1))
        .map(|t| t.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn conformant_runner_reaches_the_target_and_effbench_counts_everything() {
    // The template's hello lists `reuse_batches`: one x and one y file per repeat, rewritten
    // in place at every fetch; every count below is effbench's all the same.
    let dir = tmp("ok");
    let config = toml(dir.path(), "", 60.0);
    let r = run(dir.path(), &config, "2", None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    check_counts(&r, |_| 2);
    // The result names the runner configuration that made it: the TOML's SHA-256, as
    // coreutils' sha256sum computes it.
    let sha256sum = |p: &Path| {
        let o = Command::new("sha256sum").arg(p).output().unwrap();
        assert!(o.status.success(), "sha256sum {}", p.display());
        String::from_utf8(o.stdout).unwrap().split_whitespace().next().unwrap().to_string()
    };
    let recorded = r.result().backend.runner_config_sha256.expect("runner_config_sha256");
    assert_eq!(recorded, sha256sum(&config));
    // And keeps the TOML's bytes beside the result (a bundle carries them): the very bytes
    // given, which hash to the recorded SHA-256.
    let copy = r.dir.join(format!("{WORKLOAD}.runner.toml"));
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&config).unwrap(), "{}", copy.display());
    assert_eq!(sha256sum(&copy), recorded);
}

#[test]
fn a_runner_without_reuse_batches_gets_a_fresh_file_pair_per_fetch() {
    let dir = tmp("fresh");
    let r = run(dir.path(), &toml_env(dir.path(), "", 60.0, ", TEMPLATE_FRESH = \"1\""), "2", None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    check_counts(&r, |fetches| 2 * fetches);
}

#[test]
fn a_mapped_batches_runner_maps_one_file_pair_per_repeat_that_is_never_resized() {
    // The template maps x.bin and y.bin at a repeat's first fetch and checks at every fetch
    // that each is still the same file of max_fetch rows (4,096 here) while the batches are
    // 32 rows: a file cut to the batch, as `reuse_batches` does, fails the run. The rows read
    // are the batch: the same samples to target as the conformant (reuse) run.
    same_as_reuse("mapped", "TEMPLATE_MAPPED", 2);
}

#[test]
fn a_prefetch_batches_runner_gets_two_file_pairs_in_turn_and_its_batch_is_kept_while_it_asks_ahead() {
    // The template sends each fetch before it steps on the batch it has, and checks once the
    // fetch is answered that the batch it had is still in its files (effbench wrote the new
    // one into the other pair) and that the pairs alternate: effbench writing one pair for
    // every batch, as under mapped_batches, fails the run. Asking ahead changes nothing
    // effbench counts: the same samples to target as the conformant run, since every
    // evaluation still follows every batch served before it.
    same_as_reuse("prefetch", "TEMPLATE_PREFETCH", 4);
}

/// A template run with `env_var=1` (2 repeats): conformant, `paths` batch paths per repeat,
/// and the same samples to target as the conformant run with `reuse_batches`.
fn same_as_reuse(name: &str, env_var: &str, paths: u64) {
    let dir = tmp(name);
    let r = run(dir.path(), &toml_env(dir.path(), "", 60.0, &format!(", {env_var} = \"1\"")), "2", None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    check_counts(&r, |_| paths);
    let reuse = tmp(&format!("{name}-vs-reuse"));
    let q = run(reuse.path(), &toml(reuse.path(), "", 60.0), "2", None);
    let s = |r: &Ran| r.result().repeats.iter().map(|p| p.samples_to_target).collect::<Vec<_>>();
    assert_eq!(s(&r), s(&q));
}

/// Everything effbench counted in a conformant run, and the batch paths the runner read per
/// repeat (`paths(fetches)`).
fn check_counts(r: &Ran, paths: impl Fn(u64) -> u64) {
    let res = r.result();
    assert_eq!(res.backend.kind, "external");
    assert_eq!(res.backend.division.as_deref(), Some("open"));
    assert_eq!(res.repeats.len(), 2);
    for rep in &res.repeats {
        assert!(rep.valid, "{:?}", rep.invalid_reason);
        let t = rep.runner_train.as_ref().expect("runner_train recorded");
        assert_eq!(
            (t.division.as_str(), t.params, t.reference_params),
            ("open", Some(0), 64 * 128 + 128 + 128 * 10 + 10)
        );
        let s = rep.samples_to_target.unwrap();
        // Batches of the recipe's 32 samples, evaluations every 320: samples to target is a
        // multiple of 320 that effbench counted (the runner never says it).
        assert_eq!(s % 320, 0, "{s}");
        assert_eq!(rep.units_processed, s);
        assert_eq!(t.fetches * 32, s, "one batch per fetch");
        // 64 pixels + a label per sample, as the candle loop counts bytes.
        assert_eq!(rep.bytes_to_target.unwrap().0, s * 65);
        // The batch files held f32 pixels and i64 labels.
        assert_eq!(t.batch_bytes.0, s * (64 * 4 + 8));
        let evals = rep.evaluations.as_ref().unwrap();
        assert_eq!(t.evaluations, evals.len() as u64);
        assert_eq!(evals.last().unwrap().samples, s);
        assert!(evals.last().unwrap().quality >= 0.95);
        assert!(evals[..evals.len() - 1].iter().all(|e| e.quality < 0.95));
        // 360 held-out rows of 10 float32 logits per evaluation.
        assert_eq!(t.output_bytes.0, evals.len() as u64 * 360 * 10 * 4);
        assert!(rep.unique_samples.unwrap() <= s && rep.unique_samples.unwrap() > 0);
        assert!(t.steps.is_some());
    }
    // A v1.1 file reads back, and the work directory is gone.
    let log = std::fs::read_to_string(r.dir.join(format!("{WORKLOAD}.runner.log"))).unwrap();
    assert!(log.contains("done at fetch") && log.contains("target"), "{log}");
    let want: Vec<u64> = res.repeats.iter().map(|rep| paths(rep.runner_train.as_ref().unwrap().fetches)).collect();
    assert_eq!(batch_paths(&log), want, "{log}");
}

#[test]
fn a_runner_without_the_train_op_is_refused_before_any_work() {
    let (r, _d) = hostile("no-train", "1", 10.0);
    assert_failed(&r, 2, "no-train", &["does not declare training", "\"infer\""]);
    assert!(!r.dir.join(format!("{WORKLOAD}.json")).exists());
}

#[test]
fn bad_fetches_stop_the_run_naming_the_message() {
    // The template rewrites batch files in place (`reuse_batches`): every index is checked on
    // that path too; and once on the fresh-file path.
    let dir = tmp("fresh-out-of-range");
    let t = toml_env(dir.path(), "out-of-range", 60.0, ", TEMPLATE_FRESH = \"1\"");
    let r = run(dir.path(), &t, "2", None);
    assert_failed(&r, 5, "out-of-range", &["index 1437 is out of range", "run cut short: 0 of 2 repeats"]);
    for (mode, what) in [
        ("out-of-range", "index 1437 is out of range"),
        ("non-integer", "index 1.5 is out of range or not an integer"),
        ("too-many", "asks for 4097 indices"),
        ("empty", "asks for 0 indices"),
        ("fetch-after-done", "after effbench answered done (target)"),
    ] {
        let (r, _d) = hostile(mode, "2", 60.0);
        assert_failed(&r, 5, mode, &[what, "run cut short: 0 of 2 repeats", "last message received:", "fetch"]);
    }
}

#[test]
fn bad_evaluation_outputs() {
    // Wrong shape: a protocol error, the run stops.
    let (r, _d) = hostile("bad-shape", "1", 60.0);
    assert_failed(&r, 5, "bad-shape", &["evaluate output", "shape [360, 11], expected [360, 10]"]);
    // NaN: the repeat is invalid with the reason, the run goes on (exit 4), the file is whole.
    let (r, _d) = hostile("nan", "2", 60.0);
    assert_eq!(r.code(), Some(4), "{}", r.stderr());
    let res = r.result();
    assert_eq!(res.repeats.len(), 2);
    for rep in &res.repeats {
        assert!(!rep.valid);
        assert!(rep.invalid_reason.as_deref().unwrap().contains("NaN or infinity"), "{:?}", rep.invalid_reason);
        assert_eq!(rep.samples_to_target, None);
        assert_eq!(rep.units_processed, 320, "stopped at the first evaluation");
    }
}

#[test]
fn silent_or_crashing_runners_are_stopped_and_finished_repeats_kept() {
    let t = std::time::Instant::now();
    let (r, _d) = hostile("no-evaluate", "1", 2.0);
    assert_failed(&r, 5, "no-evaluate", &["no reply to `evaluate`", "within 2.000 s (the watchdog)"]);
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
    // A crash in the second repeat: the first stays in the file.
    let dir = tmp("crash");
    let t = toml_env(dir.path(), "crash", 60.0, ", TEMPLATE_CRASH_REPEAT = \"1\"");
    let r = run(dir.path(), &t, "2", None);
    let kept = "run cut short: 1 of 2 repeats finished and are kept";
    assert_failed(&r, 5, "crash", &[kept, "the runner closed stdout", "exit status: 3", "crashing on purpose"]);
    let res = r.result();
    assert_eq!(res.repeats.len(), 1);
    assert!(res.repeats[0].valid && res.repeats[0].samples_to_target.is_some());
}

#[test]
fn a_runner_that_ends_early_claiming_the_target_is_invalid_and_its_claim_ignored() {
    let (r, _d) = hostile("early", "1", 60.0);
    assert_eq!(r.code(), Some(4), "{}", r.stderr());
    let rep = &r.result().repeats[0];
    assert!(!rep.valid);
    let why = rep.invalid_reason.as_deref().unwrap();
    assert!(why.contains("ended training at 96 samples before the target was met"), "{why}");
    assert_eq!(rep.samples_to_target, None);
    assert_eq!(rep.units_processed, 96);
    assert!(rep.meter_warnings.iter().any(|w| w.contains("claimed it reached the target")), "{:?}", rep.meter_warnings);
    assert!(rep.meter_warnings.iter().any(|w| w.contains("claimed 999999 samples; effbench served 96")));
}

#[test]
fn a_model_that_never_learns_stops_at_the_cap_invalid() {
    let dir = tmp("cap");
    let recipe = dir.path().join("small-cap.toml");
    let base = std::fs::read_to_string(repo().join("models/recipes/digits-mlp-train/baseline.toml")).unwrap();
    std::fs::write(
        &recipe,
        format!("{}\n[evaluation]\nsample_cap = 640\n", base.replace("\"baseline\"", "\"small-cap\"")),
    )
    .unwrap();
    let r = run(dir.path(), &toml(dir.path(), "zeros", 60.0), "1", Some(&recipe));
    assert_eq!(r.code(), Some(4), "{}", r.stderr());
    let rep = &r.result().repeats[0];
    assert!(!rep.valid && rep.invalid_reason.as_deref().unwrap().contains("not reached within the sample cap"));
    assert_eq!(rep.units_processed, 640);
    assert_eq!(rep.evaluations.as_ref().unwrap().len(), 2);
}

#[test]
fn the_torch_templates_message_loop_with_a_fake_model() {
    let dir = tmp("torch");
    let script = repo().join("harness/tests/fixtures/runners/torch_fake.py");
    let p = dir.path().join("torch.toml");
    std::fs::write(
        &p,
        format!("name = \"torch-fake\"\ncommand = [\"python3\", \"{}\"]\ntimeout_s = 30\n", script.display()),
    )
    .unwrap();
    let recipe = dir.path().join("small-cap.toml");
    let base = std::fs::read_to_string(repo().join("models/recipes/digits-mlp-train/baseline.toml")).unwrap();
    std::fs::write(
        &recipe,
        format!("{}\n[evaluation]\nsample_cap = 960\n", base.replace("\"baseline\"", "\"small-cap\"")),
    )
    .unwrap();
    let r = run(dir.path(), &p, "1", Some(&recipe));
    // The fake model learns nothing: the cap is reached, the repeat invalid, the file whole.
    assert_eq!(r.code(), Some(4), "{}", r.stderr());
    let res = r.result();
    assert_eq!(res.backend.division.as_deref(), Some("closed"));
    let rep = &res.repeats[0];
    let t = rep.runner_train.as_ref().unwrap();
    assert_eq!(t.params, Some(t.reference_params), "the fake declares the reference count");
    assert_eq!(rep.units_processed, 960);
    assert_eq!(t.evaluations, 3);
    assert!(!rep.meter_warnings.iter().any(|w| w.contains("division closed")), "{:?}", rep.meter_warnings);

    // A closed runner whose model is not the reference's size: recorded, with a warning.
    let toml = std::fs::read_to_string(&p).unwrap() + "env = { FAKE_PARAMS_OFFSET = \"5\" }\n";
    std::fs::write(&p, toml).unwrap();
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    let r = run(dir.path(), &p, "1", Some(&recipe));
    assert_eq!(r.code(), Some(4), "{}", r.stderr());
    let rep = &r.result().repeats[0];
    assert_eq!(rep.runner_train.as_ref().unwrap().params, Some(9615));
    let w = "division closed, but runner torch-fake trains 9615 parameters; the reference architecture has 9610";
    assert!(rep.meter_warnings.iter().any(|m| m == w), "{:?}", rep.meter_warnings);
}
