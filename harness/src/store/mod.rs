//! History: an index of result documents, in SQLite by default (one file, embedded) or in
//! PostgreSQL for a testbed of many machines recording into one database.
//!
//! The result JSON files stay the source of truth; the store indexes them (workload, recipe
//! and its hash, backend, system and its class, git commit, created_at, planted slowdown,
//! every per-repeat number, provenance, the file's path and SHA-256) and keeps each document's
//! bytes, so a lost file can be exported again ([`Store::document`]). Recording is idempotent
//! by the document's SHA-256, and each document is written in one transaction.
//!
//! SQLite: WAL mode (readers never block the writer), `synchronous = NORMAL` (a crash of the
//! process loses nothing committed; a power loss may lose the last commits, which the result
//! files still hold), a busy timeout so concurrent recorders queue instead of failing.
//!
//! Specs (`--store`, `EFFBENCH_STORE`): `sqlite:PATH`, `postgres://USER@HOST[:PORT]/DB` (or
//! `postgresql://`), `none`. See [`StoreSpec::parse`].

pub mod db;
mod import;
pub mod index;
mod query;
pub mod schema;
pub mod view;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

pub use import::{import_dirs, ImportReport};
pub use index::{backend_key, system_class};
pub use query::{ListFilter, ListedRun, TrendPoint};

use crate::error::Error;
use crate::result::RunResult;
use db::Conn;

/// The default store, relative to the working directory (as `run`'s default `--out`).
pub const DEFAULT_PATH: &str = "results/effbench.sqlite";

/// Where the history lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Sqlite(PathBuf),
    /// A `postgres://` URL, as given (it may carry a password: see the `Display`).
    Postgres(String),
}

impl StoreSpec {
    /// `sqlite:PATH`, `postgres://...` / `postgresql://...`, or `none` (`Ok(None)`).
    pub fn parse(s: &str) -> Result<Option<StoreSpec>, String> {
        if s == "none" {
            Ok(None)
        } else if let Some(p) = s.strip_prefix("sqlite:") {
            if p.is_empty() {
                return Err("sqlite: needs a path, e.g. sqlite:results/effbench.sqlite".into());
            }
            Ok(Some(StoreSpec::Sqlite(PathBuf::from(p))))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            s.parse::<postgres::Config>().map_err(|e| format!("{}: not a PostgreSQL URL ({e})", redact(s)))?;
            Ok(Some(StoreSpec::Postgres(s.to_string())))
        } else {
            Err(format!(
                "{s:?} is not a store: give sqlite:PATH, postgres://USER@HOST[:PORT]/DB or none (default sqlite:{DEFAULT_PATH})"
            ))
        }
    }

    pub fn default_sqlite() -> StoreSpec {
        StoreSpec::Sqlite(PathBuf::from(DEFAULT_PATH))
    }
}

/// `postgres://user:secret@host/db` without the secret.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            format!("{scheme}://{}:***@{host}", user.split(':').next().unwrap_or(""))
        }
        _ => url.to_string(),
    }
}

/// The spec as messages show it: never a password.
impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            StoreSpec::Postgres(u) => f.write_str(&redact(u)),
        }
    }
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreSpec({self})")
    }
}

/// An open store, its schema at [`schema::VERSION`]. Not shared between threads: each thread
/// or process opens its own.
pub struct Store {
    spec: StoreSpec,
    conn: std::cell::RefCell<Conn>,
}

/// What the gate asks the history for: runs like the candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryQuery {
    pub workload: String,
    pub recipe_sha256: String,
    pub system_class: String,
    /// [`backend_key`]: `cpu`, `cuda:0`, `external:NAME`.
    pub backend: String,
    pub limit: usize,
    /// Documents to leave out (the candidate itself, when it was recorded).
    pub exclude_sha256: Vec<String>,
}

/// The query for runs of the same workload, recipe hash, system class and backend as
/// `candidate`.
pub fn history_query(candidate: &RunResult, limit: usize, exclude_sha256: Vec<String>) -> HistoryQuery {
    HistoryQuery {
        workload: candidate.workload.id.clone(),
        recipe_sha256: candidate.recipe.sha256.clone(),
        system_class: system_class(&candidate.system),
        backend: backend_key(&candidate.backend.kind, &candidate.backend.device),
        limit,
        exclude_sha256,
    }
}

/// A run read back from the store.
#[derive(Clone, Debug)]
pub struct StoredRun {
    pub run_id: String,
    /// Where the file was when it was recorded.
    pub path: PathBuf,
    pub sha256: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub result: RunResult,
}

/// The text form of every timestamp in the store: UTC, fixed width, so text order is time order.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl Store {
    /// Opens (creating an SQLite file and its folder where needed) and migrates. A store of a
    /// newer schema is refused untouched; any failure is bad input (exit 2) naming the store.
    pub fn open(spec: &StoreSpec) -> Result<Store, Error> {
        Self::open_inner(spec).map_err(|e| Error::bad_input(e.context(format!("cannot open the store {spec}"))))
    }

    fn open_inner(spec: &StoreSpec) -> anyhow::Result<Store> {
        let mut conn = match spec {
            StoreSpec::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                }
                Conn::sqlite(path)?
            }
            StoreSpec::Postgres(url) => Conn::postgres(url)?,
        };
        // The version is read before anything is written (the WAL switch included).
        let name = spec.to_string();
        if let Conn::Sqlite(c) = &conn {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                .context("not an SQLite database (or unreadable)")?;
        }
        schema::refuse_newer(&mut conn, &name)?;
        if let Conn::Sqlite(c) = &conn {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "NORMAL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            // The last connection to close would otherwise copy the WAL into the database and
            // sync it: most of what recording one run costs. SQLite's automatic checkpoint
            // (every 1000 pages, inside a commit) keeps the WAL bounded instead.
            c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        }
        schema::migrate(&mut conn, &name)?;
        Ok(Store { spec: spec.clone(), conn: std::cell::RefCell::new(conn) })
    }

    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    /// Records the result document `text` (the file's bytes) found at `path`, in one
    /// transaction. Returns its SHA-256 and whether it was new (false: already recorded).
    pub fn record_text(&self, path: &Path, text: &str, git_commit: Option<String>) -> Result<(String, bool), Error> {
        let result = RunResult::from_json(text, path).map_err(Error::bad_input)?;
        let doc = index::Document { path, text, result: &result, git_commit };
        let sha = index::sha256_hex(text.as_bytes());
        let new = self.conn.borrow_mut().transaction(|c| index::insert(c, &doc, &sha)).map_err(|e| {
            Error::bad_input(e.context(format!("recording {} in the store {}", path.display(), self.spec)))
        })?;
        Ok((sha, new))
    }

    /// Reads the result file at `path` and records it (see [`Store::record_text`]).
    pub fn record_file(&self, path: &Path, git_commit: Option<String>) -> Result<(String, bool), Error> {
        use std::io::Read;
        // `load` refuses what is not a regular file of at most MAX_RESULT_BYTES; the text is
        // then read through the same bound (the file could grow in between).
        RunResult::load(path).map_err(Error::bad_input)?;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(crate::result::MAX_RESULT_BYTES).read_to_end(&mut bytes))
            .map_err(|e| Error::bad_input(anyhow!("cannot read {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::bad_input(anyhow!("{} changed while it was read; record it again", path.display())))?;
        self.record_text(path, &text, git_commit)
    }

    /// The newest `q.limit` runs like the query's, newest first, leaving out runs with a
    /// planted slowdown and the excluded documents.
    pub fn recent_runs(&self, q: &HistoryQuery) -> Result<Vec<StoredRun>, Error> {
        query::recent_runs(&mut self.conn.borrow_mut(), q)
            .map_err(|e| Error::bad_input(e.context(format!("reading the store {}", self.spec))))
    }

    /// Runs matching `filter`, newest first (no documents read).
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<ListedRun>, Error> {
        query::list(&mut self.conn.borrow_mut(), filter)
            .map_err(|e| Error::bad_input(e.context(format!("reading the store {}", self.spec))))
    }

    /// The run whose id or SHA-256 starts with `id` (at least 6 hex digits); an error when none
    /// or several do.
    pub fn find(&self, id: &str) -> Result<StoredRun, Error> {
        query::find(&mut self.conn.borrow_mut(), id, &self.spec.to_string())
    }

    /// The stored bytes of a run's document.
    pub fn document(&self, sha256: &str) -> Result<String, Error> {
        query::document(&mut self.conn.borrow_mut(), sha256)
            .map_err(|e| Error::bad_input(e.context(format!("reading the store {}", self.spec))))
    }

    /// `metric`'s summary (median and 95% interval) for each run of `workload`, oldest first.
    pub fn trend(&self, workload: &str, metric: &str) -> Result<Vec<TrendPoint>, Error> {
        query::trend(&mut self.conn.borrow_mut(), workload, metric)
            .map_err(|e| Error::bad_input(e.context(format!("reading the store {}", self.spec))))
    }

    /// `PRAGMA integrity_check` (SQLite; `ok` for PostgreSQL, which checks itself).
    pub fn integrity_check(&self) -> Result<String, Error> {
        match &*self.conn.borrow() {
            Conn::Sqlite(c) => Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?),
            Conn::Postgres(_) => Ok("ok".into()),
        }
    }
}

/// A WAL larger than this is checkpointed and truncated when a store is closed.
const WAL_TRUNCATE_BYTES: u64 = 4 << 20;

impl Drop for Store {
    /// Connections close without a checkpoint (cheap), but a new process forgets what the WAL
    /// already copied and its first commit over SQLite's automatic threshold would copy the
    /// whole WAL again, every time: so once the WAL passes [`WAL_TRUNCATE_BYTES`], the closing
    /// connection checkpoints and truncates it (once in many recordings). A busy store skips
    /// it; the next close tries again.
    fn drop(&mut self) {
        let (StoreSpec::Sqlite(path), Conn::Sqlite(c)) = (&self.spec, &*self.conn.borrow()) else { return };
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_TRUNCATE_BYTES) {
            let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

/// The git commit a run measured, where the environment says it: `EFFBENCH_GIT_COMMIT`, else
/// CI's (`GITHUB_SHA`, `CI_COMMIT_SHA`).
pub fn git_commit_from_env() -> Option<String> {
    ["EFFBENCH_GIT_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_string()))
}

/// `run` and `baseline record`: records a finished result file, and on any failure returns the
/// warning to show (naming the store and the reason) instead of an error: the run is never lost
/// for the index's sake, and its exit code stays.
pub fn record_or_warning(spec: &StoreSpec, path: &Path) -> Option<String> {
    let done = Store::open(spec).and_then(|s| s.record_file(path, git_commit_from_env()));
    match done {
        Ok(_) => None,
        Err(e) => Some(format!(
            "warning: {} was written but not recorded in the store {spec}: {e} (record it later with \
             `effbench history import`)",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests;
