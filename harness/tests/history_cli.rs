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
