//! Helpers shared by the end-to-end tests (`mod util;` in each test file). One copy, so a
//! change to how tests start effbench or make temp dirs happens in one place.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `effbench` binary under test, with the environment variables that would change its
/// defaults removed.
pub fn effbench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_effbench"));
    c.env_remove("RAYON_NUM_THREADS")
        .env_remove("EFFBENCH_BACKEND")
        .env_remove("EFFBENCH_METER")
        .env_remove("EFFBENCH_SAMPLE_HZ")
        .env_remove("EFFBENCH_FMNIST_DIR")
        // No test records into the working directory's default store unless it asks to.
        .env("EFFBENCH_STORE", "none");
    c
}

/// Runs effbench with `args` and waits for it.
pub fn run(args: &[&str]) -> Output {
    effbench().args(args).output().unwrap()
}

/// A fresh temp directory, removed when the returned guard drops (unpredictable name, from
/// `tempfile`).
pub fn tempdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("effbench-{name}-")).tempdir().unwrap()
}

/// Lossy UTF-8 of a process's output.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// stdout and stderr of `o` together, for assertions on messages.
pub fn both(o: &Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The Python of the project's test environment (`runners/reference/.venv`, made by
/// `bash runners/reference/setup.sh` from the pinned `requirements.txt`: onnxruntime, onnx,
/// jsonschema), so no test depends on what the machine's own Python has installed.
pub fn venv_python() -> PathBuf {
    let p = repo().join("runners/reference/.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash runners/reference/setup.sh` once (it installs the tests' pinned Python packages)",
        p.display()
    );
    p
}

/// `run` with the fast settings tests use (short idle window, no GEMM calibration).
pub fn quick_run(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--idle-secs", "0.2", "--peak-secs", "0", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

/// Runs `cmd` with piped output and waits at most `secs` seconds; a command still running
/// then is killed and the test fails with `what` (a hang is a bug, not a slow test).
pub fn output_within(cmd: &mut Command, secs: u64, what: &str) -> Output {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Edits the JSON file at `path` in place (pretty-printed again).
pub fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Copies the regular files of a directory tree (`cp -r`, links not followed).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if t.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `n` result documents in `dir` made from the real result `baselines/cpu-amd-epyc-2t/NAME`:
/// each a copy with its own `created_at` (one minute apart from 2026-01-01) and repeat seeds,
/// so each is a distinct document. Synthetic: for store tests and benches, not measurements.
pub fn synthetic_results(dir: &Path, name: &str, n: usize) -> Vec<PathBuf> {
    let real = repo().join("baselines/cpu-amd-epyc-2t").join(name);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
    (0..n)
        .map(|i| {
            let mut v = v.clone();
            v["created_at"] = (t0 + chrono::Duration::minutes(i as i64)).to_rfc3339().into();
            for (k, r) in v["repeats"].as_array_mut().unwrap().iter_mut().enumerate() {
                r["seed"] = (i * 1000 + k).into();
            }
            let p = dir.join(format!("{i:05}-{name}"));
            std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
            p
        })
        .collect()
}

/// Whether a test that needs an outside tool (`what`) may run: `true` when `found`. When it
/// is absent the test is skipped with a message saying how to get it (`how`), except under CI
/// (the `CI` environment variable set), where a missing tool fails the test: CI installs it.
pub fn tool_present(what: &str, found: bool, how: &str) -> bool {
    if found {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{what} is missing and CI is set: {how}");
    eprintln!("SKIPPED: {what} is missing ({how}); under CI this test fails instead");
    false
}

/// A copy of the result `src` in `dest_dir` with every repeat's CPU time, wall time and energy
/// (total, domains and scopes, so readers find it consistent) multiplied by `factor`, then
/// `edit` applied.
pub fn scaled_copy(src: &Path, dest_dir: &Path, factor: f64, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    let scale = |x: &mut serde_json::Value| {
        if let Some(f) = x.as_f64() {
            *x = (f * factor).into();
        }
    };
    for r in v["repeats"].as_array_mut().unwrap() {
        for key in ["cpu_s", "wall_s", "energy_per_unit_j"] {
            if let Some(x) = r.get_mut(key) {
                scale(x);
            }
        }
        for key in ["energy_j", "dynamic_energy_j"] {
            scale(&mut r[key]["total"]);
            r[key]["by_domain"].as_object_mut().unwrap().values_mut().for_each(scale);
        }
        let scopes = r.get_mut("energy_scopes").and_then(|s| s.as_object_mut());
        for s in scopes.into_iter().flat_map(|s| s.values_mut()) {
            for key in ["total_j", "dynamic_j", "per_unit_j"] {
                if let Some(x) = s.get_mut(key) {
                    scale(x);
                }
            }
        }
    }
    edit(&mut v);
    std::fs::create_dir_all(dest_dir).unwrap();
    let dest = dest_dir.join(src.file_name().unwrap());
    std::fs::write(&dest, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    dest
}
