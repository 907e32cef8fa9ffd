//! One small connection type over SQLite (`rusqlite`) and PostgreSQL (`postgres`, sync), so the
//! store has one code path and one set of SQL texts for both.
//!
//! Contract: SQL uses `$1, $2, ...` placeholders, each number's first appearance in increasing
//! order (SQLite binds `$N` by order of first appearance, PostgreSQL by number: the same
//! binding). Integers are `BIGINT` (i64), reals `DOUBLE PRECISION` (f64), text `TEXT`; no
//! other column types, so a value reads back the same from either database. Not thread-safe:
//! one [`Conn`] per thread or process (each opens its own).

use std::time::Duration;

use anyhow::{anyhow, Context, Result};

/// A parameter, typed even when null (PostgreSQL checks a null's type against the column).
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Param {
        Param::Int(Some(v))
    }
}
impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Param {
        Param::Int(v)
    }
}
impl From<f64> for Param {
    fn from(v: f64) -> Param {
        Param::Real(Some(v))
    }
}
impl From<Option<f64>> for Param {
    fn from(v: Option<f64>) -> Param {
        Param::Real(v)
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Param {
        Param::Text(Some(v.to_string()))
    }
}
impl From<String> for Param {
    fn from(v: String) -> Param {
        Param::Text(Some(v))
    }
}
impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Param {
        Param::Text(v)
    }
}

/// A value read back.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Cell {
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(v) => Some(*v),
            _ => None,
        }
    }
    pub fn real(&self) -> Option<f64> {
        match self {
            Cell::Real(v) => Some(*v),
            Cell::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}

pub type Row = Vec<Cell>;

/// Which database, for the few DDL words and locks that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

/// How long a writer waits for another's lock before giving up (SQLite's busy timeout): long
/// enough that many processes recording at once all land.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl Conn {
    pub fn sqlite(path: &std::path::Path) -> Result<Conn> {
        let c = rusqlite::Connection::open(path)?;
        c.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Conn::Sqlite(c))
    }

    pub fn postgres(url: &str) -> Result<Conn> {
        let mut config: postgres::Config = url.parse().context("not a PostgreSQL connection URL")?;
        config.connect_timeout(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("effbench");
        }
        Ok(Conn::Postgres(Box::new(config.connect(postgres::NoTls)?)))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Statements without parameters, separated by `;`.
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => c.execute_batch(sql)?,
            Conn::Postgres(c) => c.batch_execute(sql)?,
        }
        Ok(())
    }

    /// One statement; the rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.execute(rusqlite::params_from_iter(params.iter().map(sqlite_value)))?;
                Ok(n as u64)
            }
            Conn::Postgres(c) => {
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(pg_value).collect();
                Ok(c.execute(sql, &refs)?)
            }
        }
    }

    /// One query's rows, each as many cells as the query has columns.
    pub fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>> {
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let rows = st.query_map(rusqlite::params_from_iter(params.iter().map(sqlite_value)), |r| {
                    (0..n).map(|i| r.get_ref(i).map(sqlite_cell)).collect::<rusqlite::Result<Row>>()
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<Row>>>()?)
            }
            Conn::Postgres(c) => {
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(pg_value).collect();
                c.query(sql, &refs)?.iter().map(pg_row).collect()
            }
        }
    }

    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    /// SQLite takes the write lock at `BEGIN IMMEDIATE`, so two writers queue on the busy
    /// timeout instead of one failing when it upgrades a read lock.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        self.batch(match self.dialect() {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        })?;
        match f(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                // The error that matters is `e`; a failed rollback leaves the transaction to
                // the database, which discards it when the connection closes.
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn sqlite_value(p: &Param) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match p {
        Param::Int(Some(v)) => Value::Integer(*v),
        Param::Real(Some(v)) => Value::Real(*v),
        Param::Text(Some(v)) => Value::Text(v.clone()),
        Param::Int(None) | Param::Real(None) | Param::Text(None) => Value::Null,
    }
}

fn sqlite_cell(v: rusqlite::types::ValueRef<'_>) -> Cell {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
    }
}

fn pg_value(p: &Param) -> &(dyn postgres::types::ToSql + Sync) {
    match p {
        Param::Int(v) => v,
        Param::Real(v) => v,
        Param::Text(v) => v,
    }
}

fn pg_row(r: &postgres::Row) -> Result<Row> {
    use postgres::types::Type;
    (0..r.len())
        .map(|i| {
            let t = r.columns()[i].type_();
            Ok(if *t == Type::INT8 {
                r.try_get::<_, Option<i64>>(i)?.map_or(Cell::Null, Cell::Int)
            } else if *t == Type::INT4 {
                r.try_get::<_, Option<i32>>(i)?.map_or(Cell::Null, |v| Cell::Int(v.into()))
            } else if *t == Type::FLOAT8 {
                r.try_get::<_, Option<f64>>(i)?.map_or(Cell::Null, Cell::Real)
            } else if *t == Type::TEXT || *t == Type::VARCHAR {
                r.try_get::<_, Option<String>>(i)?.map_or(Cell::Null, Cell::Text)
            } else {
                return Err(anyhow!("column {} has type {t}, which the store does not use", r.columns()[i].name()));
            })
        })
        .collect()
}
