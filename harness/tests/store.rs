//! One suite of store tests, run against SQLite (a temp file) and against a real PostgreSQL 15
//! server that this file starts itself (initdb + pg_ctl in a temp dir, on a free port on
//! 127.0.0.1, as the unprivileged user `nobody` when the tests run as root: initdb refuses
//! root). Without the server binaries the PostgreSQL test is skipped with a message, except
//! when `CI` is set: then it fails (.ci/run installs PostgreSQL 15).

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use effbench::result::RunResult;
use effbench::store::{history_query, ListFilter, Store, StoreSpec};

/// A case of the suite: a fresh, empty store and a temp dir.
type Case = fn(&StoreSpec, &Path);

/// The suite: each case gets a fresh, empty store.
const CASES: &[(&str, Case)] = &[
    ("idempotent_and_byte_identical", idempotent_and_byte_identical),
    ("recent_runs_like_the_candidate", recent_runs_like_the_candidate),
    ("concurrent_recorders_lose_nothing", concurrent_recorders_lose_nothing),
    ("list_filters", list_filters),
    ("divisions_and_a_version_1_store", divisions_and_a_version_1_store),
];

fn load(p: &Path) -> (String, RunResult) {
    let text = std::fs::read_to_string(p).unwrap();
    let r = RunResult::from_json(&text, p).unwrap();
    (text, r)
}

fn idempotent_and_byte_identical(spec: &StoreSpec, tmp: &Path) {
    let files = util::synthetic_results(&tmp.join("docs"), "digits-mlp-train.json", 3);
    let store = Store::open(spec).unwrap();
    for f in &files {
        assert!(store.record_file(f, None).unwrap().1);
        assert!(!store.record_file(f, None).unwrap().1, "recorded twice");
    }
    // Opening again (migrations already applied) and recording again changes nothing.
    let store = Store::open(spec).unwrap();
    assert!(!store.record_file(&files[0], None).unwrap().1);
    assert_eq!(store.list(&ListFilter::default()).unwrap().len(), 3);
    for f in &files {
        let (text, _) = load(f);
        let sha = effbench::store::index::sha256_hex(text.as_bytes());
        assert_eq!(store.document(&sha).unwrap(), text);
        let found = store.find(&sha[..8]).unwrap();
        assert_eq!((found.path.as_path(), found.sha256.as_str()), (f.as_path(), sha.as_str()));
    }
    assert!(store.find("zzzzzz").is_err());
    assert!(store.find(&"0".repeat(12)).unwrap_err().to_string().contains("no run"));
}

fn recent_runs_like_the_candidate(spec: &StoreSpec, tmp: &Path) {
    let files = util::synthetic_results(&tmp.join("docs"), "digits-mlp-train.json", 12);
    let store = Store::open(spec).unwrap();
    for f in &files {
        store.record_file(f, None).unwrap();
    }
    // A planted slowdown, newest of all, is never history.
    let (text, mut planted) = load(&files[11]);
    planted.created_at += chrono::Duration::days(1);
    planted.planted_slowdown = Some(0.2);
    let p = tmp.join("planted.json");
    planted.write(&p).unwrap();
    store.record_file(&p, None).unwrap();
    let (_, candidate) = (text, load(&files[0]).1);
    let got = store.recent_runs(&history_query(&candidate, 10, vec![])).unwrap();
    assert_eq!(got.len(), 10);
    let want: Vec<PathBuf> = files.iter().rev().take(10).cloned().collect();
    assert_eq!(got.iter().map(|r| r.path.clone()).collect::<Vec<_>>(), want, "newest first");
    assert!(got.windows(2).all(|w| w[0].created_at > w[1].created_at));
    let excluded = vec![got[0].sha256.clone(), got[1].sha256.clone()];
    let again = store.recent_runs(&history_query(&candidate, 10, excluded.clone())).unwrap();
    assert_eq!(again.len(), 10);
    assert!(again.iter().all(|r| !excluded.contains(&r.sha256)));
    let mut other = history_query(&candidate, 10, vec![]);
    other.backend = "cuda:0".into();
    assert!(store.recent_runs(&other).unwrap().is_empty());
}

fn concurrent_recorders_lose_nothing(spec: &StoreSpec, tmp: &Path) {
    const THREADS: usize = 8;
    const EACH: usize = 15;
    let files = util::synthetic_results(&tmp.join("docs"), "fmnist-mlp-infer.json", THREADS * EACH);
    std::thread::scope(|s| {
        for chunk in files.chunks(EACH) {
            // Each recorder opens its own connection, as separate machines would, and the
            // first opens race on the migration.
            s.spawn(move || {
                let store = Store::open(spec).unwrap();
                for f in chunk {
                    assert!(store.record_file(f, None).unwrap().1);
                }
            });
        }
    });
    let store = Store::open(spec).unwrap();
    let listed = store.list(&ListFilter::default()).unwrap();
    assert_eq!(listed.len(), THREADS * EACH);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

fn list_filters(spec: &StoreSpec, tmp: &Path) {
    let a = util::synthetic_results(&tmp.join("a"), "digits-mlp-train.json", 4);
    let b = util::synthetic_results(&tmp.join("b"), "fmnist-mlp-infer.json", 2);
    let store = Store::open(spec).unwrap();
    for f in a.iter().chain(&b) {
        store.record_file(f, None).unwrap();
    }
    let f = |workload: Option<&str>, system: Option<&str>, since: Option<&str>| ListFilter {
        workload: workload.map(str::to_string),
        system: system.map(str::to_string),
        since: since.map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()),
        limit: None,
    };
    assert_eq!(store.list(&f(Some("digits-mlp-train"), None, None)).unwrap().len(), 4);
    assert_eq!(store.list(&f(None, Some("cpu-amd-epyc-2t"), None)).unwrap().len(), 6);
    assert_eq!(store.list(&f(None, Some("no-such-box"), None)).unwrap().len(), 0);
    // One minute apart from 2026-01-01T00:00 (see util::synthetic_results): minutes 2 and 3.
    assert_eq!(store.list(&f(Some("digits-mlp-train"), None, Some("2026-01-01T00:02:00Z"))).unwrap().len(), 2);
    let trend = store.trend("digits-mlp-train", "energy_j").unwrap();
    assert_eq!(trend.len(), 4);
    assert!(trend.iter().all(|p| p.ci95[0] <= p.median && p.median <= p.ci95[1]));
}

/// A copy of the real result `src` made to look like a training run through a runner that
/// declared division `open` and 0 parameters (synthetic: for the store's columns, not a
/// measurement; the bundle tests use a real runner).
fn as_runner_run(src: &Path, to: &Path) -> PathBuf {
    std::fs::copy(src, to).unwrap();
    util::edit_json(to, |v| {
        v["backend"]["kind"] = "external".into();
        v["backend"]["device"] = "host CPU (template runner)".into();
        v["backend"]["division"] = "open".into();
        for r in v["repeats"].as_array_mut().unwrap() {
            r["runner_train"] = serde_json::json!({
                "division": "open", "params": 0, "reference_params": 9610, "precision": "f32",
                "fetches": 1, "evaluations": 1, "batch_bytes": 0, "output_bytes": 0
            });
        }
    });
    to.to_path_buf()
}

/// Each listed run's (workload, division, runner parameters), sorted.
fn divisions(store: &Store) -> Vec<(String, Option<String>, Option<i64>)> {
    let mut v: Vec<_> = store
        .list(&ListFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| (format!("{} {}", r.workload, r.backend), r.division, r.runner_params))
        .collect();
    v.sort();
    v
}

fn divisions_and_a_version_1_store(spec: &StoreSpec, tmp: &Path) {
    let candle = util::synthetic_results(&tmp.join("c"), "digits-mlp-train.json", 1).remove(0);
    let infer = util::synthetic_results(&tmp.join("i"), "fmnist-mlp-infer.json", 1).remove(0);
    let runner = as_runner_run(&candle, &tmp.join("runner.json"));
    let store = Store::open(spec).unwrap();
    for f in [&candle, &infer, &runner] {
        assert!(store.record_file(f, None).unwrap().1);
    }
    let want = vec![
        ("digits-mlp-train cpu".to_string(), Some("closed".to_string()), None),
        ("digits-mlp-train external:host CPU (template runner)".to_string(), Some("open".to_string()), Some(0)),
        ("fmnist-mlp-infer cpu".to_string(), None, None),
    ];
    assert_eq!(divisions(&store), want);
    let listed = store.list(&ListFilter::default()).unwrap();
    let text = effbench::store::view::list_text(&listed);
    assert!(text.lines().next().unwrap().contains("division"), "{text}");
    assert!(text.lines().any(|l| l.contains("external:host CPU") && l.contains("  open  ")), "{text}");
    let r = listed.iter().find(|r| r.division.as_deref() == Some("open")).unwrap();
    let shown = effbench::store::view::show_text(&store.find(&r.run_id).unwrap());
    assert!(
        shown.contains("division: open (the runner trains 0 parameters; the reference architecture 9610)"),
        "{shown}"
    );
    drop(store);
    // The store as version 1 left it (this version's store with migration 2 taken back): the
    // next open migrates it, and the divisions come back, the runner's from its document.
    let mut c = match spec {
        StoreSpec::Sqlite(p) => effbench::store::db::Conn::sqlite(p).unwrap(),
        StoreSpec::Postgres(u) => effbench::store::db::Conn::postgres(u).unwrap(),
    };
    c.batch("ALTER TABLE runs DROP COLUMN division; ALTER TABLE runs DROP COLUMN runner_params; DELETE FROM effbench_migrations WHERE version = 2").unwrap();
    drop(c);
    let store = Store::open(spec).unwrap();
    assert_eq!(divisions(&store), want);
    assert_eq!(store.list(&ListFilter::default()).unwrap().len(), 3);
}

#[test]
fn sqlite_suite() {
    for (name, case) in CASES {
        let dir = util::tempdir(&format!("store-{name}"));
        case(&StoreSpec::Sqlite(dir.path().join("h.sqlite")), dir.path());
    }
}

/// A PostgreSQL server in a temp dir, stopped when dropped (on every path, panics included).
struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// `cmd` as the user `nobody` when we are root (initdb refuses root), else as ourselves.
fn as_unprivileged(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn check(c: &mut Command, what: &str) {
    let o = c.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(o.status.success(), "{what} failed: {}", util::both(&o));
}

impl PgServer {
    /// `None` (with a message) where PostgreSQL is not installed, outside CI.
    fn start() -> Option<PgServer> {
        let bin = PathBuf::from(std::env::var("EFFBENCH_PG_BIN").unwrap_or_else(|_| PG_BIN.to_string()));
        if !bin.join("initdb").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set and {} has no initdb: .ci/run installs postgresql-15; install it",
                bin.display()
            );
            eprintln!("SKIPPED: no PostgreSQL server binaries in {} (apt-get install postgresql-15)", bin.display());
            return None;
        }
        let dir = util::tempdir("pg");
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        }
        let data = dir.path().join("data");
        check(
            as_unprivileged(&bin.join("initdb")).args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "effbench",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = PgServer { bin, port, dir };
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            server.dir.path().display()
        );
        check(
            as_unprivileged(&server.bin.join("pg_ctl")).args([
                "-D",
                data.to_str().unwrap(),
                "-l",
                server.dir.path().join("log").to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ]),
            "pg_ctl start",
        );
        Some(server)
    }

    /// A new, empty database; its store spec.
    fn database(&self, name: &str) -> StoreSpec {
        let mut c = postgres::Client::connect(
            &format!("postgres://effbench@127.0.0.1:{}/postgres", self.port),
            postgres::NoTls,
        )
        .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        StoreSpec::Postgres(format!("postgres://effbench@127.0.0.1:{}/{name}", self.port))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_unprivileged(&self.bin.join("pg_ctl"))
            .args(["-D", self.dir.path().join("data").to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[test]
fn postgres_suite() {
    let Some(server) = PgServer::start() else { return };
    for (name, case) in CASES {
        let tmp = util::tempdir(&format!("pgcase-{name}"));
        case(&server.database(name), tmp.path());
    }
    // What recording and the gate's query cost against this server (printed; the bound is
    // loose, a check that nothing is pathologically slow, not the measurement).
    let spec = server.database("speed");
    let tmp = util::tempdir("pg-speed");
    let files = util::synthetic_results(tmp.path(), "fmnist-mlp-train.json", 40);
    let store = Store::open(&spec).unwrap();
    let t = std::time::Instant::now();
    for f in &files {
        store.record_file(f, None).unwrap();
    }
    let record = t.elapsed() / files.len() as u32;
    let t = std::time::Instant::now();
    let got = store.recent_runs(&history_query(&load(&files[0]).1, 10, vec![])).unwrap();
    let recent = t.elapsed();
    assert_eq!(got.len(), 10);
    eprintln!("PostgreSQL: recording one result {record:.2?} (mean of {}), recent_runs(10) {recent:.2?}", files.len());
    assert!(record.as_secs_f64() < 1.0 && recent.as_secs_f64() < 1.0);
    drop(store);

    gate_from_history(&server);

    // A store of a newer schema is refused, and left as it was.
    let spec = server.database("newer");
    drop(Store::open(&spec).unwrap());
    let StoreSpec::Postgres(url) = &spec else { unreachable!() };
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute("INSERT INTO effbench_migrations VALUES (99, 'x', 'future')").unwrap();
    let e = Store::open(&spec).err().unwrap();
    assert!(e.to_string().contains("schema version 99"), "{e}");
    let n: i64 = c.query_one("SELECT count(*) FROM effbench_migrations", &[]).unwrap().get(0);
    assert_eq!(n, effbench::store::schema::VERSION + 1, "every migration and the future row, nothing more");
    // No password ever reaches a message.
    let e =
        Store::open(&StoreSpec::Postgres(format!("postgres://effbench:sekrit@127.0.0.1:{}/nonexistent", server.port)))
            .err()
            .unwrap();
    assert!(!e.to_string().contains("sekrit") && e.to_string().contains("nonexistent"), "{e}");
}

/// `gate --baseline history` against a PostgreSQL store, through the CLI as a testbed uses it:
/// five earlier runs (copies of a real result with CPU time, wall time and energy scaled by
/// their between-run level), then the same work and a 20% slowdown gated against them.
fn gate_from_history(server: &PgServer) {
    let StoreSpec::Postgres(url) = server.database("gate") else { unreachable!() };
    let tmp = util::tempdir("pg-gate");
    let src = util::repo().join("baselines/cpu-amd-epyc-2t/digits-mlp-train.json");
    let copy = |name: &str, factor: f64, hour: usize| {
        let at = format!("2026-11-26T{hour:02}:00:00Z");
        util::scaled_copy(&src, &tmp.path().join(name), factor, move |v| v["created_at"] = at.clone().into())
    };
    for (i, f) in [1.0, 0.96, 1.04, 0.98, 1.02].iter().enumerate() {
        copy(&format!("h{i}"), *f, i);
    }
    let o = util::run(&["history", "--store", &url, "import", tmp.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", util::both(&o));
    let gate = |cand: &Path| {
        let o =
            util::run(&["gate", cand.to_str().unwrap(), "--baseline", "history", "--store", &url, "--metrics", "time"]);
        (o.status.code(), util::both(&o))
    };
    let (code, out) = gate(&copy("same", 1.01, 10));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("5 earlier runs"), "{out}");
    let (code, out) = gate(&copy("slow", 1.2, 11));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("REGRESSION"), "{out}");
}
