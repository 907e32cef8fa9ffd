//! The store's read queries: the gate's [`recent_runs`], `history list`, `show`, `export` and
//! `trend`. One SQL text each, for both databases.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use serde::Serialize;

use super::db::{Cell, Conn, Param, Row};
use super::{HistoryQuery, StoredRun};
use crate::error::Error;
use crate::result::RunResult;

/// The most rows `history list` returns unless told otherwise.
pub const DEFAULT_LIST_LIMIT: usize = 100_000;

fn text(r: &Row, i: usize) -> String {
    r.get(i).and_then(Cell::text).unwrap_or_default().to_string()
}

fn time(r: &Row, i: usize) -> Result<chrono::DateTime<chrono::Utc>> {
    let s = text(r, i);
    Ok(chrono::DateTime::parse_from_rfc3339(&s).map_err(|e| anyhow!("stored time {s:?}: {e}"))?.to_utc())
}

fn stored_run(r: &Row) -> Result<StoredRun> {
    let path = PathBuf::from(text(r, 1));
    let result = RunResult::from_json(r.get(4).and_then(Cell::text).unwrap_or_default(), &path)
        .map_err(|e| anyhow!("the stored copy of {} does not read back: {e}", path.display()))?;
    Ok(StoredRun { run_id: text(r, 0), path, sha256: text(r, 2), created_at: time(r, 3)?, result })
}

const RUN_COLUMNS: &str = "r.run_id, r.path, r.sha256, r.created_at, d.document";
const RUN_TABLES: &str = "runs r JOIN documents d ON d.sha256 = r.sha256";

pub fn recent_runs(conn: &mut Conn, q: &HistoryQuery) -> Result<Vec<StoredRun>> {
    // The exclusions are few (the candidate itself): filtered here, with the limit raised by
    // their number, rather than a variable-length `NOT IN` list.
    let limit = q.limit.saturating_add(q.exclude_sha256.len()).min(i64::MAX as usize) as i64;
    let rows = conn.query(
        &format!(
            "SELECT {RUN_COLUMNS} FROM {RUN_TABLES} WHERE r.workload = $1 AND r.recipe_sha256 = $2 \
             AND r.system_class = $3 AND r.backend = $4 AND (r.planted_slowdown IS NULL OR r.planted_slowdown = 0) \
             ORDER BY r.created_at DESC, r.sha256 LIMIT $5"
        ),
        &[
            q.workload.as_str().into(),
            q.recipe_sha256.as_str().into(),
            q.system_class.as_str().into(),
            q.backend.as_str().into(),
            limit.into(),
        ],
    )?;
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| !q.exclude_sha256.contains(&text(r, 2))) {
        if out.len() == q.limit {
            break;
        }
        out.push(stored_run(r)?);
    }
    Ok(out)
}

/// `history list`'s filters; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub workload: Option<String>,
    /// A hostname or a system class.
    pub system: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: Option<usize>,
}

/// One line of `history list`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListedRun {
    pub run_id: String,
    pub created_at: String,
    pub workload: String,
    pub recipe: String,
    pub recipe_sha256: String,
    pub backend: String,
    /// Training: `closed` (the reference architecture) or `open` (a runner's own model); `None`
    /// for inference.
    pub division: Option<String>,
    /// Training through a runner: the runner's trainable parameter count, where it gave one.
    pub runner_params: Option<i64>,
    pub hostname: String,
    pub system_class: String,
    pub git_commit: Option<String>,
    pub repeats: i64,
    pub valid_repeats: i64,
    pub provenance: String,
    pub planted_slowdown: Option<f64>,
    pub path: String,
    pub sha256: String,
}

pub fn list(conn: &mut Conn, f: &ListFilter) -> Result<Vec<ListedRun>> {
    let opt = |s: &Option<String>| Param::Text(s.clone());
    let limit = f.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(i64::MAX as usize) as i64;
    let rows = conn.query(
        "SELECT run_id, created_at, workload, recipe_name, recipe_sha256, backend, hostname, system_class, \
         git_commit, repeats, valid_repeats, provenance, planted_slowdown, path, sha256, division, runner_params \
         FROM runs \
         WHERE (CAST($1 AS TEXT) IS NULL OR workload = $1) \
         AND (CAST($2 AS TEXT) IS NULL OR hostname = $2 OR system_class = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR created_at >= $3) ORDER BY created_at DESC, sha256 LIMIT $4",
        &[opt(&f.workload), opt(&f.system), Param::Text(f.since.map(super::timestamp)), limit.into()],
    )?;
    Ok(rows
        .iter()
        .map(|r| ListedRun {
            run_id: text(r, 0),
            created_at: text(r, 1),
            workload: text(r, 2),
            recipe: text(r, 3),
            recipe_sha256: text(r, 4),
            backend: text(r, 5),
            division: r[15].text().map(str::to_string),
            runner_params: r[16].int(),
            hostname: text(r, 6),
            system_class: text(r, 7),
            git_commit: r[8].text().map(str::to_string),
            repeats: r[9].int().unwrap_or(0),
            valid_repeats: r[10].int().unwrap_or(0),
            provenance: text(r, 11),
            planted_slowdown: r[12].real(),
            path: text(r, 13),
            sha256: text(r, 14),
        })
        .collect())
}

/// The shortest id prefix `find` takes.
pub const MIN_ID_LEN: usize = 6;

pub fn find(conn: &mut Conn, id: &str, store: &str) -> Result<StoredRun, Error> {
    let id = id.to_ascii_lowercase();
    if id.len() < MIN_ID_LEN || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::bad_input(anyhow!(
            "{id:?} is not a run id: give at least {MIN_ID_LEN} hex digits of a run id or SHA-256 (`effbench history list` shows them)"
        )));
    }
    let rows = conn
        .query(
            &format!("SELECT {RUN_COLUMNS} FROM {RUN_TABLES} WHERE r.sha256 LIKE $1 ORDER BY r.created_at LIMIT 2"),
            &[format!("{id}%").into()],
        )
        .map_err(|e| Error::bad_input(e.context(format!("reading the store {store}"))))?;
    match rows.len() {
        0 => {
            Err(Error::bad_input(anyhow!("no run {id} in the store {store} (`effbench history list` shows its runs)")))
        }
        1 => stored_run(&rows[0]).map_err(Error::bad_input),
        _ => Err(Error::bad_input(anyhow!("run id {id} is ambiguous in the store {store}: give more digits"))),
    }
}

pub fn document(conn: &mut Conn, sha256: &str) -> Result<String> {
    let rows = conn.query("SELECT document FROM documents WHERE sha256 = $1", &[sha256.into()])?;
    rows.first().and_then(|r| r[0].text()).map(str::to_string).ok_or_else(|| anyhow!("no document {sha256}"))
}

/// One run's summary of a metric, for `history trend`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrendPoint {
    pub run_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub median: f64,
    pub mean: f64,
    pub ci95: [f64; 2],
    pub n: i64,
    pub backend: String,
    pub system_class: String,
    pub planted_slowdown: Option<f64>,
    /// A training run's division (`closed`, `open`); none for inference.
    pub division: Option<String>,
}

pub fn trend(conn: &mut Conn, workload: &str, metric: &str) -> Result<Vec<TrendPoint>> {
    let rows = conn.query(
        "SELECT r.run_id, r.created_at, s.median, s.mean, s.ci_low, s.ci_high, s.n, r.backend, r.system_class, \
         r.planted_slowdown, r.division FROM runs r JOIN summaries s ON s.run_sha256 = r.sha256 \
         WHERE r.workload = $1 AND s.metric = $2 ORDER BY r.created_at, r.sha256",
        &[workload.into(), metric.into()],
    )?;
    rows.iter()
        .map(|r| {
            Ok(TrendPoint {
                run_id: text(r, 0),
                created_at: time(r, 1)?,
                median: r[2].real().unwrap_or(f64::NAN),
                mean: r[3].real().unwrap_or(f64::NAN),
                ci95: [r[4].real().unwrap_or(f64::NAN), r[5].real().unwrap_or(f64::NAN)],
                n: r[6].int().unwrap_or(0),
                backend: text(r, 7),
                system_class: text(r, 8),
                planted_slowdown: r[9].real(),
                division: r[10].text().map(str::to_string),
            })
        })
        .collect()
}
