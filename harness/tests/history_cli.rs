//! `run` and `baseline record` recording into the store, and `effbench history`, end to end
//! through the binary, against a real SQLite file (rusqlite's bundled SQLite).

mod util;

use std::path::{Path, PathBuf};

use effbench::store::{history_query, Store, StoreSpec};

fn fast_run(out: &Path, store: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--workload",
        "fmnist-mlp-infer",
        "--repeat",
        "1",
        "--fake-power",
        "30",
        "--min-window-secs",
        "0.1",
        "--store",
        store,
    ];
    args.extend_from_slice(extra);
    util::quick_run(out, &args)
}

fn sqlite(dir: &Path) -> (PathBuf, String) {
    let p = dir.join("h.sqlite");
    let spec = format!("sqlite:{}", p.display());
    (p, spec)
}

#[test]
fn run_records_each_result_file_in_the_store() {
    let dir = util::tempdir("hist-run");
    let (_, spec) = sqlite(dir.path());
    let out = dir.path().join("out");
    let o = fast_run(&out, &spec, &[]);
    assert!(o.status.success(), "{}", util::both(&o));
    let file = out.join("fmnist-mlp-infer.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let result = effbench::result::RunResult::from_json(&text, &file).unwrap();
    let store = Store::open(&StoreSpec::parse(&spec).unwrap().unwrap()).unwrap();
    let runs = store.recent_runs(&history_query(&result, 10, vec![])).unwrap();
    assert_eq!(runs.len(), 1, "{}", util::both(&o));
    assert_eq!(runs[0].path, file);
    assert_eq!(store.document(&runs[0].sha256).unwrap(), text, "the stored copy is the file's bytes");
    // Excluding the candidate's own document leaves nothing.
    assert!(store.recent_runs(&history_query(&result, 10, vec![runs[0].sha256.clone()])).unwrap().is_empty());
}

fn count_runs(db: &Path) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap()
}

#[test]
fn two_runs_recording_into_one_sqlite_file_at_once_both_land() {
    let dir = util::tempdir("hist-two");
    let (db, spec) = sqlite(dir.path());
    let start = |name: &str| {
        util::effbench()
            .args(["run", "--idle-secs", "0.2", "--peak-secs", "0", "--workload", "fmnist-mlp-infer", "--repeat", "2"])
            .args(["--fake-power", "30", "--min-window-secs", "0.1", "--store", &spec, "--out"])
            .arg(dir.path().join(name))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start("a"), start("b"));
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", util::both(&o));
        assert!(!util::both(&o).contains("not recorded"), "{}", util::both(&o));
    }
    assert_eq!(count_runs(&db), 2);
}

#[test]
fn a_store_that_cannot_be_opened_warns_and_the_run_keeps_its_files() {
    let dir = util::tempdir("hist-bad");
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    for spec in [format!("sqlite:{}", garbage.display()), format!("sqlite:{}/sub/h.sqlite", blocked.display())] {
        let out = dir.path().join(format!("out-{}", spec.len()));
        let o = fast_run(&out, &spec, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", util::both(&o));
        let err = util::text(&o.stderr);
        assert!(err.contains("warning:") && err.contains("not recorded in the store") && err.contains(&spec), "{err}");
        assert!(out.join("fmnist-mlp-infer.json").exists());
        assert!(out.join("fmnist-mlp-infer.trace.csv").exists());
        // `history` on the same store: exit 2 with the reason.
        let o = util::run(&["history", "--store", &spec, "list"]);
        assert_eq!(o.status.code(), Some(2), "{}", util::both(&o));
        assert!(util::text(&o.stderr).contains("cannot open the store"), "{}", util::both(&o));
    }
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![b'x'; 8192], "a file that is not a store is not touched");
}

#[test]
fn the_default_store_is_results_effbench_sqlite_under_the_working_directory() {
    let dir = util::tempdir("hist-default");
    let o = util::effbench()
        .env_remove("EFFBENCH_STORE")
        .current_dir(dir.path())
        .args(["run", "--idle-secs", "0.2", "--peak-secs", "0", "--workload", "fmnist-mlp-infer", "--repeat", "1"])
        .args(["--fake-power", "30", "--min-window-secs", "0.1", "--out", "out"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", util::both(&o));
    assert_eq!(count_runs(&dir.path().join("results/effbench.sqlite")), 1);
    // EFFBENCH_STORE=none records nothing.
    let o = util::effbench()
        .env("EFFBENCH_STORE", "none")
        .current_dir(dir.path())
        .args(["run", "--idle-secs", "0.2", "--peak-secs", "0", "--workload", "fmnist-mlp-infer", "--repeat", "1"])
        .args(["--fake-power", "30", "--min-window-secs", "0.1", "--out", "out2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", util::both(&o));
    assert_eq!(count_runs(&dir.path().join("results/effbench.sqlite")), 1);
}

#[test]
fn import_list_show_export_trend() {
    let dir = util::tempdir("hist-cmds");
    let (db, spec) = sqlite(dir.path());
    let tree = dir.path().join("old");
    // One system's shipped baselines (each has one result per workload).
    let system = "baselines/cpu-amd-epyc-2t";
    util::copy_dir(&util::repo().join(system), &tree.join(system));
    std::fs::create_dir_all(tree.join("junk")).unwrap();
    std::fs::write(tree.join("junk/notes.json"), r#"{"hello": 1}"#).unwrap();
    std::fs::write(tree.join("junk/trace.csv"), "t_s\n").unwrap();
    let o = util::run(&["history", "--store", &spec, "import", tree.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "a file that is not a result: exit 2 at the end\n{}", util::both(&o));
    let err = util::text(&o.stderr);
    assert!(err.contains(&format!("skipped {}", tree.join("junk/notes.json").display())), "{err}");
    let shipped = std::fs::read_dir(util::repo().join(system)).unwrap().count();
    assert!(util::text(&o.stdout).starts_with(&format!("{shipped} recorded, 0 already")), "{}", util::both(&o));
    // Idempotent.
    let o = util::run(&["history", "--store", &spec, "import", tree.join("baselines").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", util::both(&o));
    assert!(util::text(&o.stdout).starts_with(&format!("0 recorded, {shipped} already")), "{}", util::both(&o));
    assert_eq!(count_runs(&db), shipped as i64);

    let o = util::run(&["history", "--store", &spec, "list", "--workload", "digits-mlp-train", "--json"]);
    assert!(o.status.success(), "{}", util::both(&o));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let id = listed[0]["run_id"].as_str().unwrap().to_string();
    // --store after the subcommand too.
    let o = util::run(&["history", "list", "--since", "2999-01-01", "--store", &spec]);
    assert!(util::text(&o.stdout).contains("no runs"), "{}", util::both(&o));
    let o = util::run(&["history", "--store", &spec, "list", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));

    let o = util::run(&["history", "--store", &spec, "show", &id]);
    assert!(o.status.success() && util::text(&o.stdout).contains("workload: digits-mlp-train"), "{}", util::both(&o));
    let original = std::fs::read(util::repo().join("baselines/cpu-amd-epyc-2t/digits-mlp-train.json")).unwrap();
    let o = util::run(&["history", "--store", &spec, "show", &id, "--json"]);
    assert_eq!(o.stdout, original);

    // A lost file comes back byte-identical.
    let back = dir.path().join("back");
    let o = util::run(&["history", "--store", &spec, "export", &id, "--out", back.to_str().unwrap()]);
    assert!(o.status.success(), "{}", util::both(&o));
    assert_eq!(std::fs::read(back.join("digits-mlp-train.json")).unwrap(), original);
    let o = util::run(&["history", "--store", &spec, "show", "abcdef"]);
    assert_eq!(o.status.code(), Some(2));

    let svg = dir.path().join("t.svg");
    let o = util::run(&[
        "history",
        "--store",
        &spec,
        "trend",
        "--workload",
        "digits-mlp-train",
        "--metric",
        "energy_j",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", util::both(&o));
    assert!(util::text(&o.stdout).contains(&id));
    roxmltree::Document::parse(&std::fs::read_to_string(&svg).unwrap()).expect("an SVG");
    let o = util::run(&["history", "--store", &spec, "trend", "--workload", "digits-mlp-train", "--metric", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", util::both(&o));
}

#[test]
fn kill_9_in_the_middle_of_an_import_leaves_a_store_that_opens_and_checks() {
    let dir = util::tempdir("hist-kill");
    let (db, spec) = sqlite(dir.path());
    let docs = dir.path().join("docs");
    let n = 1500;
    util::synthetic_results(&docs, "digits-mlp-train.json", n);
    let mut child = util::effbench()
        .args(["history", "--store", &spec, "import", docs.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has written some documents, while it is still writing.
    let t0 = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let done = db.exists() && std::panic::catch_unwind(|| count_runs(&db)).unwrap_or(0) > 50;
        if done || t0.elapsed().as_secs() > 60 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    drop(c);
    let kept = count_runs(&db);
    assert!(kept > 0 && (kept as usize) < n, "killed mid-way: {kept} of {n}");
    // Importing again completes the store.
    let o = util::run(&["history", "--store", &spec, "import", docs.to_str().unwrap()]);
    assert!(o.status.success(), "{}", util::both(&o));
    assert_eq!(count_runs(&db), n as i64);
}

#[test]
fn baseline_record_records_the_baseline_where_it_ends_up() {
    let dir = util::tempdir("hist-baseline");
    let (db, spec) = sqlite(dir.path());
    let baselines = dir.path().join("baselines");
    let o = util::run(&[
        "baseline",
        "record",
        "--workload",
        "fmnist-mlp-infer",
        "--system",
        "testbox",
        "--idle-secs",
        "0.2",
        "--dir",
        baselines.to_str().unwrap(),
        "--store",
        &spec,
    ]);
    assert!(o.status.success(), "{}", util::both(&o));
    assert_eq!(count_runs(&db), 1);
    let store = Store::open(&StoreSpec::Sqlite(db)).unwrap();
    let listed = store.list(&Default::default()).unwrap();
    assert_eq!(PathBuf::from(&listed[0].path), baselines.join("testbox/fmnist-mlp-infer.json"));
}
