//! The store against SQLite, with real result files from baselines/ (the same suite runs
//! against PostgreSQL in tests/store.rs).

use super::*;

fn real(name: &str) -> (PathBuf, String) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../baselines/cpu-amd-epyc-2t").join(name);
    let text = std::fs::read_to_string(&p).unwrap();
    (p, text)
}

/// `text` with `created_at` set to `t` and every other byte kept.
fn at(text: &str, t: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["created_at"] = t.into();
    serde_json::to_string_pretty(&v).unwrap()
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(&StoreSpec::Sqlite(d.path().join("sub/h.sqlite"))).unwrap();
    (d, s)
}

#[test]
fn specs_parse_and_never_show_a_password() {
    assert_eq!(StoreSpec::parse("none"), Ok(None));
    assert_eq!(StoreSpec::parse("sqlite:a/b.sqlite"), Ok(Some(StoreSpec::Sqlite("a/b.sqlite".into()))));
    let pg = StoreSpec::parse("postgres://bench:hunter2@db.lab:5433/effbench").unwrap().unwrap();
    assert_eq!(pg.to_string(), "postgres://bench:***@db.lab:5433/effbench");
    assert!(!format!("{pg:?}").contains("hunter2"));
    for bad in ["sqlite:", "mysql://x/y", "results/effbench.sqlite", ""] {
        assert!(StoreSpec::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn recording_is_idempotent_and_keeps_the_bytes() {
    let (_d, s) = temp_store();
    let (p, text) = real("digits-mlp-train.json");
    let (sha, new) = s.record_text(&p, &text, Some("abc123".into())).unwrap();
    assert!(new);
    assert_eq!(sha, index::sha256_hex(text.as_bytes()));
    let (sha2, new2) = s.record_text(&p, &text, None).unwrap();
    assert_eq!((sha2.as_str(), new2), (sha.as_str(), false));
    assert_eq!(s.document(&sha).unwrap(), text);
    let listed = s.list(&ListFilter::default()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].git_commit.as_deref(), Some("abc123"));
    assert_eq!(listed[0].backend, "cpu");
    assert_eq!(listed[0].system_class, "cpu-amd-epyc-2t");
    assert_eq!(s.integrity_check().unwrap(), "ok");
}

#[test]
fn every_repeat_number_is_indexed() {
    let (_d, s) = temp_store();
    let (p, text) = real("digits-mlp-train.json");
    let (sha, _) = s.record_text(&p, &text, None).unwrap();
    let result = RunResult::from_json(&text, &p).unwrap();
    let expected: usize = result.repeats.iter().map(|r| index::repeat_numbers(r).len()).sum();
    assert!(expected > result.repeats.len() * 10, "{expected}");
    let mut c = s.conn.borrow_mut();
    let rows = c.query("SELECT count(*) FROM repeat_values WHERE run_sha256 = $1", &[sha.as_str().into()]).unwrap();
    assert_eq!(rows[0][0].int(), Some(expected as i64));
    let wall = c
        .query(
            "SELECT value FROM repeat_values WHERE run_sha256 = $1 AND repeat_index = $2 AND name = $3",
            &[sha.as_str().into(), 1i64.into(), "wall_s".into()],
        )
        .unwrap();
    assert_eq!(wall[0][0].real(), Some(result.repeats[1].wall_s.0));
}

#[test]
fn recent_runs_match_workload_recipe_class_backend_newest_first() {
    let (_d, s) = temp_store();
    let (p, text) = real("digits-mlp-train.json");
    let times = ["2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z"];
    let mut shas = Vec::new();
    for t in times {
        shas.push(s.record_text(&p, &at(&text, t), None).unwrap().0);
    }
    // Not like the candidate: a planted slowdown, another recipe hash, another backend.
    let mut planted: serde_json::Value = serde_json::from_str(&at(&text, "2026-05-01T00:00:00Z")).unwrap();
    planted["planted_slowdown"] = 0.2.into();
    s.record_text(&p, &serde_json::to_string(&planted).unwrap(), None).unwrap();
    let mut other = planted.clone();
    other.as_object_mut().unwrap().remove("planted_slowdown");
    other["recipe"]["sha256"] = "0".repeat(64).into();
    s.record_text(&p, &serde_json::to_string(&other).unwrap(), None).unwrap();
    other["recipe"] = planted["recipe"].clone();
    other["backend"]["device"] = "cuda:0".into();
    other["backend"]["kind"] = "cuda".into();
    s.record_text(&p, &serde_json::to_string(&other).unwrap(), None).unwrap();

    let candidate = RunResult::from_json(&text, &p).unwrap();
    let q = history_query(&candidate, 10, vec![]);
    assert_eq!((q.backend.as_str(), q.system_class.as_str()), ("cpu", "cpu-amd-epyc-2t"));
    let got = s.recent_runs(&q).unwrap();
    let dates: Vec<String> = got.iter().map(|r| r.created_at.format("%Y-%m").to_string()).collect();
    assert_eq!(dates, ["2026-04", "2026-03", "2026-02", "2026-01"]);
    assert_eq!(got[0].sha256, shas[3]);
    assert_eq!(got[0].run_id, &shas[3][..12]);
    assert_eq!(got[0].result.workload.id, "digits-mlp-train");
    // The limit, and the exclusions (which do not shorten the answer).
    let got = s.recent_runs(&history_query(&candidate, 2, vec![shas[3].clone()])).unwrap();
    let dates: Vec<String> = got.iter().map(|r| r.created_at.format("%Y-%m").to_string()).collect();
    assert_eq!(dates, ["2026-03", "2026-02"]);
}

#[test]
fn a_newer_schema_is_refused_untouched() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("h.sqlite");
    drop(Store::open(&StoreSpec::Sqlite(path.clone())).unwrap());
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute("INSERT INTO effbench_migrations VALUES (99, 'x', 'future')", []).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let e = Store::open(&StoreSpec::Sqlite(path.clone())).err().unwrap();
    assert_eq!(e.exit(), crate::error::Exit::BadInput);
    assert!(e.to_string().contains("schema version 99, newer than the 2"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn system_class_is_the_machine_type_not_the_host() {
    let (p, text) = real("digits-mlp-train.json");
    let mut r = RunResult::from_json(&text, &p).unwrap();
    r.system.hostname = "other-box".into();
    r.system.accelerators =
        vec!["NVIDIA H100 80GB HBM3 (0000:01:00.0)".into(), "NVIDIA H100 80GB HBM3 (0000:02:00.0)".into()];
    assert_eq!(system_class(&r.system), "cpu-amd-epyc-2t+2x-nvidia-h100-80gb-hbm3");
    assert_eq!(backend_key("external", "npu0"), "external:npu0");
    assert_eq!(backend_key("cuda", "cuda:1"), "cuda:1");
}
