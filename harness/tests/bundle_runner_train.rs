//! `submit` and `check` of a training run through a runner (Runner Protocol v1.1, issue 15),
//! through the real binary and a real runner process (runners/template/runner.py, whose
//! stand-in model, a memorising nearest-neighbour classifier in the Python standard library,
//! reaches digits-mlp-train's target). The bundle carries no export (the runner trains its own
//! model) but the runner's log; the checker re-derives `runner_train` from effbench's own
//! rules, so an edited count or a flipped division fails even under a re-hashed manifest.

mod util;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use effbench::bundle::manifest::rehash;
use util::{both, copy_dir, edit_json, run, tempdir};

const W: &str = "digits-mlp-train";

/// One real result directory: 5 repeats through the template runner, fake constant power so
/// the windows resolve. Made once per test binary, only copied after.
fn fixture() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let root = tempfile::Builder::new()
            .prefix("effbench-bundle-runner-fixture-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let script = util::repo().join("runners/template/runner.py");
        let toml = root.join("runner.toml");
        let text = format!(
            "name = \"template\"\ncommand = [\"python3\", \"{}\"]\ntimeout_s = 60\nstartup_timeout_s = 30\n",
            script.display()
        );
        std::fs::write(&toml, text).unwrap();
        let out = root.join("out");
        let backend = format!("external:{}", toml.display());
        let o = util::quick_run(&out, &["--backend", &backend, "--workload", W, "--repeat", "5", "--fake-power", "10"]);
        assert!(o.status.success(), "{}", both(&o));
        out
    })
}

/// A fresh copy of the result directory (edited by `edit` first), submitted into `dir/bundle`.
fn bundle(dir: &Path, edit: impl FnOnce(&Path)) -> PathBuf {
    let res = dir.join("res");
    copy_dir(fixture(), &res);
    edit(&res);
    let out = dir.join("bundle");
    let o = run(&["submit", res.to_str().unwrap(), "--out", out.to_str().unwrap(), "--submitter", "acme"]);
    assert!(o.status.success(), "{}", both(&o));
    out
}

/// The run's directory in the bundle: `acme/<system class>/<workload>/run_1`.
fn run_dir(b: &Path) -> String {
    let sys = std::fs::read_dir(b.join("acme")).unwrap().next().unwrap().unwrap().file_name();
    format!("acme/{}/{W}/run_1", sys.to_string_lossy())
}

fn result_rel(b: &Path) -> String {
    format!("{}/{W}.json", run_dir(b))
}

fn check(b: &Path) -> Output {
    run(&["check", b.to_str().unwrap()])
}

/// Exit `code`, and one output line holding every one of `parts`.
fn assert_finding(o: &Output, code: i32, parts: &[&str]) {
    let out = both(o);
    assert_eq!(o.status.code(), Some(code), "{out}");
    assert!(out.lines().any(|l| parts.iter().all(|p| l.contains(p))), "no line with {parts:?} in:\n{out}");
}

/// The bundle's result edited by `f` and the manifest re-hashed over it, as a submitter who
/// covers an edit would; then checked.
fn edited(name: &str, f: impl FnOnce(&mut serde_json::Value)) -> (tempfile::TempDir, PathBuf, String, Output) {
    let d = tempdir(name);
    let b = bundle(d.path(), |_| {});
    let rel = result_rel(&b);
    edit_json(&b.join(&rel), f);
    rehash(&b, &rel).unwrap();
    let o = check(&b);
    (d, b, rel, o)
}

#[test]
fn a_runner_training_bundle_carries_its_log_no_export_and_checks_valid() {
    let d = tempdir("brt-ok");
    let b = bundle(d.path(), |_| {});
    let dir = run_dir(&b);
    assert!(b.join(format!("{dir}/{W}.runner.log")).is_file());
    assert!(b.join(format!("{dir}/recipe.toml")).is_file());
    assert!(!b.join(format!("{dir}/export")).exists(), "no model of effbench's to export for a runner's training");
    let o = check(&b);
    assert_finding(&o, 0, &["bundle valid"]);
    let rel = result_rel(&b);
    assert_finding(&o, 0, &["pass", "runner", &format!("{W}.runner.log"), "carried"]);
    assert_finding(&o, 0, &["pass", "data", &rel, "65 bytes per sample"]);
    // f32 pixels and an i64 label per sample in the batch files; every 320 samples; the
    // reference MLP 64-128-10's parameters; the template declares open.
    assert_finding(
        &o,
        0,
        &["pass", "runner", &rel, "264 per sample", "every 320 samples", "reference parameters 9610", "division open"],
    );
    assert_finding(&o, 0, &["pass", "energy", &rel, "re-integrated"]);
    assert_finding(&o, 0, &["pass", "validity", &rel]);
}

/// The SHA-256 the fixture's result records for its runner TOML.
fn recorded_config_sha(b: &Path) -> String {
    let r = effbench::result::RunResult::load(&b.join(result_rel(b))).unwrap();
    r.backend.runner_config_sha256.expect("a runner run records its TOML's SHA-256")
}

#[test]
fn a_runner_bundle_carries_the_runner_toml_it_was_run_with_and_checks_it() {
    let d = tempdir("brt-toml");
    let b = bundle(d.path(), |_| {});
    let toml = format!("{}/{W}.runner.toml", run_dir(&b));
    // The bytes the run was given (the fixture's TOML), carried as they are.
    let given = std::fs::read(fixture().parent().unwrap().join("runner.toml")).unwrap();
    assert_eq!(std::fs::read(b.join(&toml)).unwrap(), given);
    let sha = recorded_config_sha(&b);
    let o = check(&b);
    assert_finding(&o, 0, &["bundle valid"]);
    assert_finding(&o, 0, &["pass", "runner-config", &toml, &sha, "records"]);
}

#[test]
fn a_runner_toml_edited_or_removed_after_submit_fails_under_a_rehashed_manifest() {
    let d = tempdir("brt-toml-edit");
    let b = bundle(d.path(), |_| {});
    let toml = format!("{}/{W}.runner.toml", run_dir(&b));
    let sha = recorded_config_sha(&b);
    // A longer watchdog, say, covered by a re-hashed manifest entry: the file's hash is the
    // manifest's, but not the one the result recorded.
    let edited =
        String::from_utf8(std::fs::read(b.join(&toml)).unwrap()).unwrap().replace("timeout_s = 60", "timeout_s = 600");
    std::fs::write(b.join(&toml), &edited).unwrap();
    rehash(&b, &toml).unwrap();
    let (new_sha, _) = effbench::bundle::fsafe::hash_file(&b, Path::new(&toml)).unwrap();
    assert_ne!(new_sha, sha);
    let o = check(&b);
    assert_finding(
        &o,
        4,
        &["fail", "runner-config", &toml, &format!("SHA-256 {new_sha}"), &sha, "not the runner TOML"],
    );
    assert_finding(&o, 4, &["bundle INVALID"]);
    assert!(!both(&o).contains("pass  runner-config"), "{}", both(&o));
    // Removed, with its manifest entry: the result still names a TOML the bundle lacks.
    std::fs::remove_file(b.join(&toml)).unwrap();
    edit_json(&b.join("manifest.json"), |v| v["files"].as_array_mut().unwrap().retain(|f| f["path"] != toml.as_str()));
    assert_finding(&check(&b), 4, &["fail", "runner-config", &toml, "no runner TOML", &sha]);
}

#[test]
fn submit_refuses_a_runner_run_without_its_runner_toml() {
    let d = tempdir("brt-notoml");
    let res = d.path().join("res");
    copy_dir(fixture(), &res);
    let toml = res.join(format!("{W}.runner.toml"));
    std::fs::remove_file(&toml).unwrap();
    let out = d.path().join("bundle");
    let o = run(&["submit", res.to_str().unwrap(), "--out", out.to_str().unwrap(), "--submitter", "acme"]);
    let e = both(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    let result = res.join(format!("{W}.json"));
    for part in [&result.display().to_string(), &toml.display().to_string(), "runner_config_sha256", "is missing"] {
        assert!(e.contains(part), "expected {part:?} in: {e}");
    }
    assert!(e.contains("submit the result directory `effbench run` wrote"), "{e}");
}

#[test]
fn submit_refuses_a_runner_training_run_without_its_log() {
    let d = tempdir("brt-nolog");
    let res = d.path().join("res");
    copy_dir(fixture(), &res);
    std::fs::remove_file(res.join(format!("{W}.runner.log"))).unwrap();
    let out = d.path().join("bundle");
    let o = run(&["submit", res.to_str().unwrap(), "--out", out.to_str().unwrap(), "--submitter", "acme"]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(both(&o).contains("its runner log") && both(&o).contains(&format!("{W}.runner.log")), "{}", both(&o));
}

#[test]
fn a_runner_log_removed_from_the_bundle_fails() {
    let d = tempdir("brt-rmlog");
    let b = bundle(d.path(), |_| {});
    let log = format!("{}/{W}.runner.log", run_dir(&b));
    std::fs::remove_file(b.join(&log)).unwrap();
    edit_json(&b.join("manifest.json"), |v| v["files"].as_array_mut().unwrap().retain(|f| f["path"] != log.as_str()));
    assert_finding(&check(&b), 4, &["fail", "runner", &log, "no runner log"]);
}

#[test]
fn edited_runner_counts_fail_under_a_rehashed_manifest() {
    // More fetches than samples (each fetch serves at least one).
    let (_d, _b, rel, o) = edited("brt-fetches", |v| v["repeats"][0]["runner_train"]["fetches"] = 321.into());
    assert_finding(&o, 4, &["fail", "runner", &rel, "repeat 1 (seed 0): 321 fetches cannot serve 320 samples"]);
    let (_d, _b, rel, o) = edited("brt-bytes", |v| {
        let b = &mut v["repeats"][1]["runner_train"]["batch_bytes"];
        *b = (b.as_u64().unwrap() / 2).into();
    });
    assert_finding(&o, 4, &["fail", "runner", &rel, "repeat 2 (seed 1): batch bytes", "264 bytes per sample"]);
    let (_d, _b, rel, o) = edited("brt-evals", |v| v["repeats"][2]["runner_train"]["evaluations"] = 7.into());
    assert_finding(&o, 4, &["fail", "runner", &rel, "repeat 3 (seed 2): runner_train counts 7 evaluations"]);
    let (_d, _b, rel, o) = edited("brt-ref", |v| v["repeats"][3]["runner_train"]["reference_params"] = 0.into());
    assert_finding(&o, 4, &["fail", "runner", &rel, "repeat 4 (seed 3): reference_params 0", "has 9610 parameters"]);
}

#[test]
fn fewer_samples_claimed_consistently_fail_the_schedule_and_the_bytes() {
    // Half the samples everywhere the repeat states them, its energy per unit and throughput
    // made to follow: the validity rules pass, effbench's serving rules do not.
    let (_d, _b, rel, o) = edited("brt-fewer", |v| {
        let r = &mut v["repeats"][0];
        let s = r["samples_to_target"].as_u64().unwrap() / 2;
        r["samples_to_target"] = s.into();
        r["units_processed"] = s.into();
        r["unique_samples"] = s.into();
        r["bytes_to_target"] = (s * 65).into();
        let evals = r["evaluations"].as_array_mut().unwrap();
        let n = evals.len();
        evals[n - 1]["samples"] = s.into();
        let e = r["energy_j"]["total"].as_f64().unwrap();
        r["energy_per_unit_j"] = (e / s as f64).into();
        r["throughput_per_s"] = (s as f64 / r["wall_s"].as_f64().unwrap()).into();
    });
    assert_finding(
        &o,
        4,
        &["fail", "runner", &rel, "repeat 1 (seed 0): an evaluation at 160 samples", "at or past 320"],
    );
    assert_finding(&o, 4, &["fail", "runner", &rel, "repeat 1 (seed 0): batch bytes"]);
    assert!(!both(&o).contains("fail  validity"), "{}", both(&o));
}

#[test]
fn a_flipped_division_fails() {
    // The result's division alone: it no longer matches its repeats'.
    let (_d, _b, rel, o) = edited("brt-div1", |v| v["backend"]["division"] = "closed".into());
    assert_finding(&o, 4, &["fail", "runner", &rel, "division open, but the result's backend.division is closed"]);
    // Everywhere: a closed run of a runner that trains 0 parameters, without the warning
    // effbench records for one.
    let flip = |v: &mut serde_json::Value| {
        v["backend"]["division"] = "closed".into();
        for r in v["repeats"].as_array_mut().unwrap() {
            r["runner_train"]["division"] = "closed".into();
        }
    };
    let (_d, _b, rel, o) = edited("brt-div2", flip);
    assert_finding(&o, 4, &["fail", "runner", &rel, "division closed, but the runner trains 0 parameters", "edited"]);
    // With the warning effbench would have recorded, it is a closed run with a warning.
    let (_d, _b, rel, o) = edited("brt-div3", |v| {
        flip(v);
        for r in v["repeats"].as_array_mut().unwrap() {
            let w = "division closed, but runner template trains 0 parameters; the reference architecture has 9610";
            r["meter_warnings"].as_array_mut().unwrap().push(w.into());
        }
    });
    assert_finding(&o, 0, &["warn", "runner", &rel, "division closed, but the runner trains 0 parameters"]);
    // A division that is neither.
    let (_d, _b, rel, o) = edited("brt-div4", |v| v["backend"]["division"] = "premium".into());
    assert_finding(&o, 4, &["fail", "runner", &rel, "backend.division is Some(\"premium\")"]);
}

#[test]
fn an_edited_bytes_to_target_fails_for_a_candle_training_run_too() {
    // The data check is every training run's: here a real candle run of the same workload.
    let d = tempdir("brt-candle");
    let res = d.path().join("res");
    let o = util::quick_run(&res, &["--workload", W, "--repeat", "5", "--fake-power", "40", "--recipe", "efficient"]);
    assert!(o.status.success(), "{}", both(&o));
    let out = d.path().join("bundle");
    let o = run(&["submit", res.to_str().unwrap(), "--out", out.to_str().unwrap(), "--submitter", "acme"]);
    assert!(o.status.success(), "{}", both(&o));
    let rel = result_rel(&out);
    assert_finding(&check(&out), 0, &["pass", "data", &rel, "65 bytes per sample"]);
    edit_json(&out.join(&rel), |v| {
        let b = &mut v["repeats"][4]["bytes_to_target"];
        *b = (b.as_u64().unwrap() / 2).into();
    });
    rehash(&out, &rel).unwrap();
    assert_finding(&check(&out), 4, &["fail", "data", &rel, "repeat 5 (seed 4): bytes to target", "65 bytes per"]);
}
