//! `gate --baseline history[:N]`: the candidate against the last N runs in a real SQLite store
//! (filled with `history import` of result files, as `run` records them). The runs are a
//! shipped baseline (a real result of this machine) copied with their CPU times scaled, each
//! copy a separate earlier run; only `--metrics time` is gated, so the scaled copies stay
//! consistent with everything the validity checks recompute.

mod util;

use std::path::{Path, PathBuf};

use util::{both, edit_json, run, tempdir};

/// Between-run levels of the earlier runs (a drift of about 4%), newest last.
const LEVELS: [f64; 8] = [1.0, 0.96, 1.05, 0.98, 1.03, 0.95, 1.02, 1.0];

/// A copy of the shipped digits result with every repeat's CPU time scaled by `f`, made
/// `minutes` minutes after the original, in `dir/name/`.
fn scaled_copy(dir: &Path, name: &str, f: f64, minutes: i64) -> PathBuf {
    let src = util::repo().join("baselines/cpu-amd-epyc-2t/digits-mlp-train.json");
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join("digits-mlp-train.json");
    std::fs::copy(src, &path).unwrap();
    edit_json(&path, |v| {
        let t: chrono::DateTime<chrono::Utc> = v["created_at"].as_str().unwrap().parse().unwrap();
        v["created_at"] = (t + chrono::Duration::minutes(minutes)).to_rfc3339().into();
        for r in v["repeats"].as_array_mut().unwrap() {
            r["cpu_s"] = (r["cpu_s"].as_f64().unwrap() * f).into();
        }
    });
    path
}

/// A store at `dir/store.sqlite` holding the earlier runs; returns its `--store` spec.
fn store_with_history(dir: &Path) -> String {
    let spec = format!("sqlite:{}", dir.join("store.sqlite").display());
    let hist = dir.join("history");
    for (i, f) in LEVELS.iter().enumerate() {
        scaled_copy(&hist, &format!("h{i}"), *f, i as i64 * 10);
    }
    let o = run(&["history", "import", hist.to_str().unwrap(), "--store", &spec]);
    assert!(o.status.success(), "{}", both(&o));
    spec
}

fn gate(cand: &Path, baseline: &str, spec: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["gate", cand.to_str().unwrap(), "--baseline", baseline, "--store", spec, "--metrics", "time"];
    args.extend_from_slice(extra);
    let o = run(&args);
    (o.status.code().unwrap(), both(&o))
}

/// `gate --json` of the CPU time against `baseline`: the exit code and the report.
fn gate_json(cand: &Path, baseline: &str, spec: &str) -> (i32, serde_json::Value) {
    let o =
        run(&["gate", cand.to_str().unwrap(), "--baseline", baseline, "--store", spec, "--metrics", "time", "--json"]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(&o)));
    (o.status.code().unwrap(), v)
}

#[test]
fn the_same_work_passes_and_a_twenty_percent_slowdown_fails() {
    let dir = tempdir("gate-history");
    let spec = store_with_history(dir.path());
    let same = scaled_copy(dir.path(), "same", 1.01, 100);
    let (code, out) = gate(&same, "history", &spec, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 earlier runs"), "the note names the history it used: {out}");
    assert!(out.contains("gate from history (the last 10 runs"), "the header states the history's rule: {out}");
    let slow = scaled_copy(dir.path(), "slow", 1.2, 110);
    let junit = dir.path().join("junit.xml");
    let (code, out) = gate(&slow, "history:8", &spec, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("REGRESSION"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure"), "{xml}");
    // JSON: the case says how many runs its interval came from.
    let (code, v) = gate_json(&slow, "history:5", &spec);
    assert_eq!(code, 1);
    let case = &v["workloads"][0]["cases"][0];
    assert_eq!(case["history_runs"], 5, "{case}");
    assert_eq!(case["outcome"], "regression", "{case}");
    assert!(case["ci95"][0].as_f64().unwrap() > 0.0, "{case}");
}

/// A CI job records its run, then gates it: the candidate in the store is not its own history.
#[test]
fn the_candidate_recorded_in_the_store_is_left_out() {
    let dir = tempdir("gate-history-self");
    let spec = store_with_history(dir.path());
    let slow = scaled_copy(dir.path(), "slow", 1.2, 100);
    let o = run(&["history", "import", slow.parent().unwrap().to_str().unwrap(), "--store", &spec]);
    assert!(o.status.success(), "{}", both(&o));
    let (code, v) = gate_json(&slow, "history:8", &spec);
    let case = &v["workloads"][0]["cases"][0];
    assert_eq!(case["history_runs"], 8, "the 8 earlier runs, not the candidate: {case}");
    assert_eq!(code, 1, "{v}");
}

#[test]
fn too_little_history_or_no_store_is_said() {
    let dir = tempdir("gate-history-empty");
    let spec = format!("sqlite:{}", dir.path().join("empty.sqlite").display());
    let cand = scaled_copy(dir.path(), "c", 1.0, 0);
    let (code, out) = gate(&cand, "history", &spec, &[]);
    assert_eq!(code, 3, "no earlier run: cannot decide, never a pass: {out}");
    assert!(out.contains("0 usable earlier run(s)"), "{out}");
    let (code, out) = gate(&cand, "history", "none", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--store none"), "{out}");
    let (code, out) = gate(&cand, "history:1", &spec, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("history:N needs N between 3"), "{out}");
}
