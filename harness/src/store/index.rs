//! What the store keeps of one result document: the `runs` row (the index columns and the
//! document's bytes), every per-repeat number, every summary statistic, and the energy sources
//! with their provenance. Written in one transaction; a document already there (same SHA-256)
//! is left as it is, so recording is idempotent.

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::db::{Conn, Param};
use crate::result::RunResult;
use crate::system::SystemInfo;

/// A result document ready to record: its text as read or written (the stored copy is these
/// bytes), the parsed result, where the file lives.
pub struct Document<'a> {
    pub path: &'a std::path::Path,
    pub text: &'a str,
    pub result: &'a RunResult,
    /// The git commit the run measured, where known.
    pub git_commit: Option<String>,
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The run id `history` shows and takes: the first 12 hex digits of the document's SHA-256.
pub fn run_id(sha256: &str) -> String {
    sha256.chars().take(12).collect()
}

/// The backend as the gate matches it: `cpu`, `cuda:0`, `external:NAME`.
pub fn backend_key(kind: &str, device: &str) -> String {
    if device == kind || device.starts_with(&format!("{kind}:")) {
        device.to_string()
    } else {
        format!("{kind}:{device}")
    }
}

/// The machine type (not the host): the CPU's host class (model and logical cores, see
/// [`crate::system::host_class`]) and each accelerator model with its count, bus ids dropped:
/// `cpu-amd-epyc-2t`, `cpu-intel-xeon-8480-224t+8x-nvidia-h100-80gb-hbm3`.
pub fn system_class(s: &SystemInfo) -> String {
    let mut class = s.host_class();
    let mut models: std::collections::BTreeMap<String, usize> = Default::default();
    for a in &s.accelerators {
        // `NVIDIA H100 80GB HBM3 (0000:01:00.0)`: the bus id in parentheses is the host's.
        let model = a.rsplit_once(" (").map_or(a.as_str(), |(m, _)| m);
        let slug: Vec<String> = model
            .to_ascii_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        *models.entry(slug.join("-")).or_default() += 1;
    }
    for (model, n) in models {
        class += &format!("+{n}x-{model}");
    }
    class
}

/// Every number of a repeat, by its JSON path (`wall_s`, `energy_j.by_domain.cpu`,
/// `runner.h2d_bytes`); booleans and text are left out (`valid` has its own column), and so
/// are lists (a training repeat's evaluation curve: 40 numbers that no query selects by
/// position; it stays in the stored document).
pub fn repeat_numbers(repeat: &crate::result::Repeat) -> Vec<(String, f64)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
        let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        match v {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                    out.push((prefix.to_string(), f));
                }
            }
            serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| walk(&join(k), v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(repeat) {
        walk("", &v, &mut out);
    }
    out
}

/// The division a training run competes in and its runner's parameter count: `closed` for
/// effbench's own backends (the reference architecture), the runner's declaration otherwise;
/// `None` for inference.
pub fn division(r: &RunResult) -> (Option<String>, Option<i64>) {
    if r.workload.kind != crate::result::WorkloadKind::Train {
        return (None, None);
    }
    let params = r.repeats.iter().find_map(|x| x.runner_train.as_ref().and_then(|t| t.params));
    (Some(r.backend.division().to_string()), params.map(|p| p.min(i64::MAX as u64) as i64))
}

/// Rows per multi-row `INSERT`: a few statements per document instead of one per number (a
/// round trip each to PostgreSQL), well under SQLite's 32,766 parameters.
const ROWS_PER_INSERT: usize = 200;

/// `INSERT INTO {table} VALUES (...), (...), ...` of `rows`, every row as wide as the first.
fn insert_rows(conn: &mut Conn, table: &str, rows: Vec<Vec<Param>>) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let width = chunk[0].len();
        let tuples: Vec<String> = (0..chunk.len())
            .map(|r| {
                let cols: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
                format!("({})", cols.join(", "))
            })
            .collect();
        let params: Vec<Param> = chunk.iter().flatten().cloned().collect();
        conn.execute(&format!("INSERT INTO {table} VALUES {}", tuples.join(", ")), &params)?;
    }
    Ok(())
}

/// Records `doc` inside the caller's transaction. Returns false when a document with the
/// same SHA-256 is already there (nothing is written).
pub fn insert(conn: &mut Conn, doc: &Document<'_>, sha256: &str) -> Result<bool> {
    let r = doc.result;
    let valid = r.repeats.iter().filter(|x| crate::validity::is_valid(r, x)).count();
    let (division, runner_params) = division(r);
    let row: Vec<Param> = vec![
        sha256.into(),
        run_id(sha256).into(),
        doc.path.display().to_string().into(),
        r.workload.id.as_str().into(),
        serde_json::to_value(r.workload.kind)?.as_str().unwrap_or("").into(),
        r.recipe.name.as_str().into(),
        r.recipe.sha256.as_str().into(),
        backend_key(&r.backend.kind, &r.backend.device).into(),
        r.backend.kind.as_str().into(),
        r.backend.device.as_str().into(),
        r.backend.precision.as_str().into(),
        r.system.hostname.as_str().into(),
        system_class(&r.system).into(),
        r.system.cpu_model.as_str().into(),
        (r.system.logical_cores as i64).into(),
        r.system.accelerators.join("; ").into(),
        doc.git_commit.clone().into(),
        super::timestamp(r.created_at).into(),
        r.planted_slowdown.into(),
        crate::run::energy_label(&r.energy_sources).into(),
        (r.repeats.len() as i64).into(),
        (valid as i64).into(),
        r.schema.as_str().into(),
        r.effbench_version.as_str().into(),
        super::timestamp(chrono::Utc::now()).into(),
        division.into(),
        runner_params.into(),
    ];
    let n = conn.execute(
        "INSERT INTO runs (sha256, run_id, path, workload, workload_kind, recipe_name, recipe_sha256, backend, \
         backend_kind, backend_device, precision_, hostname, system_class, cpu_model, logical_cores, accelerators, \
         git_commit, created_at, planted_slowdown, provenance, repeats, valid_repeats, schema_, effbench_version, \
         recorded_at, division, runner_params) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27) ON CONFLICT (sha256) DO NOTHING",
        &row,
    )?;
    if n == 0 {
        return Ok(false);
    }
    conn.execute("INSERT INTO documents (sha256, document) VALUES ($1, $2)", &[sha256.into(), doc.text.into()])?;
    let mut values: Vec<Vec<Param>> = Vec::new();
    for (i, rep) in r.repeats.iter().enumerate() {
        let ok = crate::validity::is_valid(r, rep);
        for (name, value) in repeat_numbers(rep) {
            values.push(vec![
                sha256.into(),
                (i as i64).into(),
                (rep.seed as i64).into(),
                i64::from(ok).into(),
                name.into(),
                value.into(),
            ]);
        }
    }
    insert_rows(conn, "repeat_values (run_sha256, repeat_index, seed, valid, name, value)", values)?;
    for (metric, s) in &r.summary {
        conn.execute(
            "INSERT INTO summaries (run_sha256, metric, median, mean, ci_low, ci_high, n) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                sha256.into(),
                metric.as_str().into(),
                s.median.into(),
                s.mean.into(),
                s.ci95[0].into(),
                s.ci95[1].into(),
                (s.n as i64).into(),
            ],
        )?;
    }
    for (i, s) in r.energy_sources.iter().enumerate() {
        conn.execute(
            "INSERT INTO sources (run_sha256, position, domain, kind, provenance, description) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                sha256.into(),
                (i as i64).into(),
                s.domain.as_str().into(),
                s.kind.as_str().into(),
                s.provenance.to_string().into(),
                serde_json::to_string(s)?.into(),
            ],
        )?;
    }
    Ok(true)
}
