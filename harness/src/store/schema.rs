//! The store's schema and its migrations. Every store has a table `effbench_migrations` with
//! one row per applied version; opening a store applies the missing ones in one transaction,
//! and refuses (exit 2, touching nothing) a store whose newest version is newer than
//! [`VERSION`]: a newer effbench wrote it, and this one cannot know what its columns mean.
//!
//! Column types are only `BIGINT`, `DOUBLE PRECISION` and `TEXT` (see [`super::db`]), which
//! both SQLite and PostgreSQL accept; the one table per concept keeps the SQL the same.

use anyhow::{Context, Result};

use super::db::{Conn, Dialect};

/// The schema version this effbench writes and reads.
pub const VERSION: i64 = 2;

/// Migration `i + 1`: the statements that take a store from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: runs (one row per result document), the documents' bytes (a table of their own, so
    // listing runs never reads them), every per-repeat number, each summary statistic, the
    // energy sources with their provenance.
    r#"
CREATE TABLE runs (
    sha256 TEXT PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    workload TEXT NOT NULL,
    workload_kind TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    recipe_sha256 TEXT NOT NULL,
    backend TEXT NOT NULL,
    backend_kind TEXT NOT NULL,
    backend_device TEXT NOT NULL,
    precision_ TEXT NOT NULL,
    hostname TEXT NOT NULL,
    system_class TEXT NOT NULL,
    cpu_model TEXT NOT NULL,
    logical_cores BIGINT NOT NULL,
    accelerators TEXT NOT NULL,
    git_commit TEXT,
    created_at TEXT NOT NULL,
    planted_slowdown DOUBLE PRECISION,
    provenance TEXT NOT NULL,
    repeats BIGINT NOT NULL,
    valid_repeats BIGINT NOT NULL,
    schema_ TEXT NOT NULL,
    effbench_version TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE documents (
    sha256 TEXT PRIMARY KEY REFERENCES runs (sha256),
    document TEXT NOT NULL
);
CREATE INDEX runs_history ON runs (workload, recipe_sha256, system_class, backend, created_at);
CREATE INDEX runs_created ON runs (created_at);
CREATE TABLE repeat_values (
    run_sha256 TEXT NOT NULL REFERENCES runs (sha256),
    repeat_index BIGINT NOT NULL,
    seed BIGINT NOT NULL,
    valid BIGINT NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_sha256, repeat_index, name)
);
CREATE TABLE summaries (
    run_sha256 TEXT NOT NULL REFERENCES runs (sha256),
    metric TEXT NOT NULL,
    median DOUBLE PRECISION NOT NULL,
    mean DOUBLE PRECISION NOT NULL,
    ci_low DOUBLE PRECISION NOT NULL,
    ci_high DOUBLE PRECISION NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (run_sha256, metric)
);
CREATE TABLE sources (
    run_sha256 TEXT NOT NULL REFERENCES runs (sha256),
    position BIGINT NOT NULL,
    domain TEXT NOT NULL,
    kind TEXT NOT NULL,
    provenance TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (run_sha256, position)
)
"#,
    // 2: the division a training run competes in (`closed`: the reference architecture;
    // `open`: the runner's own model) and the runner's trainable parameter count, for training
    // through a runner (Runner Protocol v1.1). NULL for inference. Rows of version 1: effbench's
    // own backends train the reference architecture (closed); a runner's training run gets
    // its division from its stored document ([`backfill_division`]).
    r#"
ALTER TABLE runs ADD COLUMN division TEXT;
ALTER TABLE runs ADD COLUMN runner_params BIGINT;
UPDATE runs SET division = 'closed' WHERE workload_kind = 'train' AND backend_kind <> 'external'
"#,
];

/// Migration 2's rows that SQL cannot fill alike in both databases (their JSON functions
/// differ): training runs through a runner, whose division and parameter count are read from
/// their stored documents.
fn backfill_division(conn: &mut Conn) -> Result<()> {
    let rows = conn.query(
        "SELECT r.sha256, d.document FROM runs r JOIN documents d ON d.sha256 = r.sha256 \
         WHERE r.workload_kind = 'train' AND r.backend_kind = 'external' AND r.division IS NULL",
        &[],
    )?;
    for row in rows {
        let (Some(sha), Some(doc)) = (row[0].text(), row[1].text()) else { continue };
        let Ok(r) = crate::result::RunResult::from_json(doc, std::path::Path::new(sha)) else { continue };
        let (division, params) = super::index::division(&r);
        conn.execute(
            "UPDATE runs SET division = $1, runner_params = $2 WHERE sha256 = $3",
            &[division.into(), params.into(), sha.into()],
        )?;
    }
    Ok(())
}

/// A store written by a newer effbench.
#[derive(Debug, thiserror::Error)]
#[error(
    "{store} has schema version {found}, newer than the {VERSION} this effbench ({}) knows; it was \
     left untouched: use the effbench that wrote it, or another --store",
    env!("CARGO_PKG_VERSION")
)]
pub struct NewerSchema {
    pub store: String,
    pub found: i64,
}

/// The newest applied version, 0 for a store without the migrations table (a new file).
fn current(conn: &mut Conn) -> Result<i64> {
    let exists = match conn.dialect() {
        Dialect::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'effbench_migrations'",
        Dialect::Postgres => "SELECT count(*) FROM information_schema.tables WHERE table_name = 'effbench_migrations' AND table_schema = current_schema()",
    };
    if conn.query(exists, &[])?.first().and_then(|r| r[0].int()) != Some(1) {
        return Ok(0);
    }
    let rows = conn.query("SELECT max(version) FROM effbench_migrations", &[])?;
    Ok(rows.first().and_then(|r| r[0].int()).unwrap_or(0))
}

/// Refuses a store of a newer schema, reading only.
pub fn refuse_newer(conn: &mut Conn, store: &str) -> Result<()> {
    let found = current(conn)?;
    if found > VERSION {
        return Err(NewerSchema { store: store.to_string(), found }.into());
    }
    Ok(())
}

/// Checks the version (refusing a newer store before any write) and applies what is missing,
/// all in one transaction; concurrent openers serialise on the write lock (SQLite) or on an
/// advisory lock (PostgreSQL), so each migration is applied once.
pub fn migrate(conn: &mut Conn, store: &str) -> Result<()> {
    let found = current(conn)?;
    if found > VERSION {
        return Err(NewerSchema { store: store.to_string(), found }.into());
    }
    if found == VERSION {
        return Ok(());
    }
    conn.transaction(|conn| {
        if conn.dialect() == Dialect::Postgres {
            // An arbitrary constant: "effbench" in ASCII, the lock's name for every opener.
            conn.batch("SELECT pg_advisory_xact_lock(7306916699425218152)")?;
        }
        conn.batch(
            "CREATE TABLE IF NOT EXISTS effbench_migrations (
                version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL, effbench_version TEXT NOT NULL)",
        )?;
        let found = current(conn)?;
        if found > VERSION {
            return Err(NewerSchema { store: store.to_string(), found }.into());
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let version = i as i64 + 1;
            conn.batch(sql).with_context(|| format!("applying the store's migration {version}"))?;
            if version == 2 {
                backfill_division(conn).context("applying the store's migration 2 (divisions of runner runs)")?;
            }
            conn.execute(
                "INSERT INTO effbench_migrations (version, applied_at, effbench_version) VALUES ($1, $2, $3)",
                &[version.into(), super::timestamp(chrono::Utc::now()).into(), env!("CARGO_PKG_VERSION").into()],
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_migration_per_version() {
        assert_eq!(super::MIGRATIONS.len() as i64, super::VERSION);
    }
}
