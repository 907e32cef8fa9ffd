//! In-process timings of the store, against the full store bench/store-speed.sh builds
//! (10,000 synthetic documents): what `run` pays to record one workload (open the store,
//! check the schema, one transaction) and what the gate pays for `recent_runs`. Ignored by
//! default (it needs that store); run after the script with
//!
//! ```sh
//! EFFBENCH_SPEED_DIR=results/store-speed cargo test -p effbench --test store_speed -- --ignored --nocapture
//! ```
//!
//! It fails when recording takes 50 ms or more, or `recent_runs` 100 ms or more (best of 5).

use std::path::PathBuf;
use std::time::Instant;

use effbench::result::RunResult;
use effbench::store::{history_query, Store, StoreSpec};

#[test]
#[ignore = "needs the store bench/store-speed.sh builds (EFFBENCH_SPEED_DIR)"]
fn recording_and_recent_runs_on_a_full_store() {
    let dir = PathBuf::from(std::env::var("EFFBENCH_SPEED_DIR").expect("set EFFBENCH_SPEED_DIR"));
    let spec = StoreSpec::Sqlite(dir.join("speed.sqlite"));
    let doc = dir.join("extra.json");
    let text = std::fs::read_to_string(&doc).unwrap();
    let candidate = RunResult::from_json(&text, &doc).unwrap();
    let runs = Store::open(&spec).unwrap().list(&Default::default()).unwrap().len();
    let mut record_ms = Vec::new();
    for i in 0..5 {
        // A new document each time (its own created_at), so every try writes.
        let mut r = candidate.clone();
        r.created_at += chrono::Duration::seconds(runs as i64 + i + 1);
        let p = dir.join(format!("speed-{i}.json"));
        r.write(&p).unwrap();
        let t = Instant::now();
        let store = Store::open(&spec).unwrap();
        let opened = t.elapsed().as_secs_f64() * 1e3;
        assert!(store.record_file(&p, None).unwrap().1);
        let recorded = t.elapsed().as_secs_f64() * 1e3;
        drop(store);
        let total = t.elapsed().as_secs_f64() * 1e3;
        println!("open {opened:.1} ms, + record {:.1} ms, + close {:.1} ms", recorded - opened, total - recorded);
        record_ms.push(total);
    }
    let store = Store::open(&spec).unwrap();
    let mut recent_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let got = store.recent_runs(&history_query(&candidate, 10, vec![])).unwrap();
        recent_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(got.len(), 10);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    println!("store of {runs} runs: recording one result (open + schema check + one transaction): {record_ms:.1?} ms");
    println!("recent_runs(limit 10): {recent_ms:.2?} ms");
    assert!(best(&record_ms) < 50.0);
    assert!(best(&recent_ms) < 100.0);
}
