//! The result file, schema `effbench.result/2`: one JSON document per run. Readers check the
//! `schema` field first and reject versions they do not know with a clear error.
//!
//! Compatibility: fields marked optional below may be absent in files written by older
//! versions; adding an optional field keeps the version, changing or removing one bumps it.
//! `/2` added energy scopes (`repeats[].energy_scopes`, `backend.domain`, see
//! [`crate::scope`]); `/1` files are still read, their scopes derived from their domains.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_json_atomic;
use crate::sensor::SourceInfo;
use crate::stats::Summary;
use crate::system::SystemInfo;
use crate::units::{Bytes, Joules, Seconds, Watts};

mod wall;
pub use wall::{UnresolvedEnergy, WallMeterRepeat, WallUncertainty};

/// The schema this version writes.
pub const SCHEMA: &str = "effbench.result/2";

/// Every schema this version reads: [`SCHEMA`] and the versions before it.
pub const READS: &[&str] = &[SCHEMA, "effbench.result/1"];

/// The largest result file effbench reads. A real one is well under 1 MiB (a few KiB per
/// repeat plus the system description); the cap keeps a wrong path (a log, `/dev/zero`) from
/// filling memory: parsing holds the text and its JSON tree, several times the file's size.
pub const MAX_RESULT_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("cannot read result file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is a symbolic link to {}, which does not exist; fix or remove the link",
        path.display(), target.display()
    )]
    DanglingLink { path: PathBuf, target: PathBuf },
    #[error("{} is {what}, not a regular file; give the path of a result .json file", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error(
        "{} is {:.1} MB, over effbench's {} MiB limit for a result file; is it a result file?",
        path.display(), *bytes as f64 / 1e6, MAX_RESULT_BYTES >> 20
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("cannot write result file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid JSON (line {line}, column {column}): {message}", path.display())]
    Syntax { path: PathBuf, line: usize, column: usize, message: String },
    #[error(
        "{} has no \"schema\" field; is it an effbench result file? (expected {SCHEMA:?})",
        path.display()
    )]
    MissingSchema { path: PathBuf },
    #[error(
        "{} has schema {found:?}, but this effbench ({}) reads only {supported}; \
         use the effbench version that wrote it, or re-run the workload",
        path.display(), env!("CARGO_PKG_VERSION")
    )]
    UnsupportedSchema { path: PathBuf, found: String, supported: String },
    #[error("{} is not a valid {SCHEMA} file (line {line}, column {column}): {message}", path.display())]
    Invalid { path: PathBuf, line: usize, column: usize, message: String },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Train,
    Infer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    /// e.g. `mlp-digits-train`.
    pub id: String,
    pub kind: WorkloadKind,
    /// The unit of work: `sample`, `token`.
    pub unit: String,
    /// e.g. `accuracy`.
    pub quality_metric: String,
    pub quality_target: f64,
    pub higher_is_better: bool,
    pub model: String,
    pub dataset: String,
    /// Floating-point operations per unit of work, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops_per_unit: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecipeInfo {
    pub name: String,
    /// SHA-256 of the recipe file's bytes (hex).
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The recipe's parameters as resolved for this run.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `cpu`, `cuda`, `external`.
    pub kind: String,
    /// `cpu`, `cuda:0`, the runner's device name.
    pub device: String,
    /// `f32`, `bf16`, ...
    pub precision: String,
    pub threads: usize,
    pub allocator: String,
    /// The energy domain of the device doing the work (`cpu`, `gpu:0`, a runner's `npu:0`):
    /// what `device` scope covers. Absent in `/1` files (derived, see [`crate::scope::work_domain`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Training through a runner (Runner Protocol v1.1): `closed` (the reference architecture)
    /// or `open` (any model; same data, metric and target), as the runner declared it. Absent
    /// for effbench's own backends, which train the reference architecture (closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    /// `--backend external:`: SHA-256 (hex) of the runner's TOML as effbench read it, so a
    /// reader can tell which runner configuration made the result. Absent for effbench's own
    /// backends and in results written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_config_sha256: Option<String>,
}

impl BackendInfo {
    /// The division a training run competes in: the runner's, else `closed`.
    pub fn division(&self) -> &str {
        self.division.as_deref().unwrap_or("closed")
    }
}

/// Energy of one repeat, total and per domain.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyBreakdown {
    pub total: Joules,
    #[serde(default)]
    pub by_domain: BTreeMap<String, Joules>,
}

impl EnergyBreakdown {
    /// A breakdown whose total is the sum of `by_domain`.
    pub fn from_domains(by_domain: BTreeMap<String, Joules>) -> EnergyBreakdown {
        EnergyBreakdown { total: by_domain.values().sum(), by_domain }
    }
}

/// Quality measured after `samples` training samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub samples: u64,
    pub quality: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repeat {
    pub seed: u64,
    /// False when the quality target was missed (or the run broke); see `invalid_reason`.
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    pub wall_s: Seconds,
    pub energy_j: EnergyBreakdown,
    /// Energy above idle: total minus idle power × wall time, per domain.
    pub dynamic_energy_j: EnergyBreakdown,
    /// Energy per scope the run measured (`device`, `node`, `wall`), summed from the domains'
    /// figures (see [`crate::scope`]). Readers re-derive it and refuse a file where the two
    /// disagree; absent in `/1` files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub energy_scopes: BTreeMap<crate::scope::Scope, crate::scope::ScopeEnergy>,
    pub avg_power_w: Watts,
    pub units_processed: u64,
    #[serde(default)]
    pub quality: Option<f64>,
    pub energy_per_unit_j: Joules,
    pub throughput_per_s: f64,
    /// CPU time (user + system) the effbench process used inside the window, every thread
    /// (the meter's sampling thread too, see `meter_busy_s`); absent where not measurable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<Seconds>,
    /// Peak RSS during this repeat (or since process start where it cannot be reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_flops_per_s: Option<f64>,
    /// `achieved_flops_per_s / peak_flops_per_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction_of_peak: Option<f64>,
    #[serde(default)]
    pub meter_warnings: Vec<String>,
    /// CPU time the meter's sampling thread spent inside this window: its overhead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_busy_s: Option<Seconds>,
    /// Per source that reports one (NVML): device state at the window's edges (power limit,
    /// temperature, SM clock, utilisation) and what its counters (PCIe bytes) moved inside it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub device_state: BTreeMap<String, crate::sensor::EdgeStates>,
    /// `--meter ptd://`: what the analyzer measured for this repeat, from its own samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_meter: Option<WallMeterRepeat>,
    /// Domains whose energy in this repeat is not a measurement; their figures are left out
    /// of `energy_j`, and `compare` and `gate` never judge such a repeat's energy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved_energy: Vec<UnresolvedEnergy>,
    /// Runs of the work inside this repeat's window (> 1 when a training run was repeated, same
    /// seed, to give a slow wall meter a window it can resolve); every per-repeat figure is
    /// per run. Absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes: Option<u32>,
    // Training only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_to_target: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_to_target: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_samples: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluations: Option<Vec<Evaluation>>,
    // Inference only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_unit: Option<Bytes>,
    /// `--backend external:`: what the runner reported and how its answers were checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerRepeat>,
    /// A training repeat through a runner (Runner Protocol v1.1): what effbench served, read
    /// back and counted, and what the runner declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_train: Option<RunnerTrainRepeat>,
}

/// A training repeat run through a runner. Every count is effbench's own; the runner's
/// counters (`steps`, `busy_s`) are recorded beside them, never used for them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunnerTrainRepeat {
    /// `closed` or `open`, as declared in the reply to `train_load`.
    pub division: String,
    /// The runner's trainable parameter count (its `train_load` reply), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<u64>,
    /// The reference architecture's parameter count (effbench's candle model).
    pub reference_params: u64,
    /// The precision the runner declared (default `f32`).
    pub precision: String,
    /// `fetch` requests answered with a batch, and `evaluate` requests sent.
    pub fetches: u64,
    pub evaluations: u64,
    /// Bytes of batch files effbench wrote, and of evaluation outputs it read back.
    pub batch_bytes: Bytes,
    pub output_bytes: Bytes,
    /// The runner's own step count and busy time (its `train` reply), when it gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_s: Option<Seconds>,
}

/// A repeat run through a runner (Runner Protocol v1). Counters are differences between the
/// runner's `stats` before `mark begin` and after `mark end`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunnerRepeat {
    /// The precision the runner declared in `load`; it decides the output check.
    pub precision: String,
    /// Time the runner says it spent computing inside the window (`stats.busy_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_s: Option<Seconds>,
    /// `(wall_s - busy_s) / units_processed`: what the protocol and the file exchange add per
    /// unit of work, as seen from effbench's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_per_unit_s: Option<Seconds>,
    /// Host-to-device and device-to-host bytes the runner reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2d_bytes: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d2h_bytes: Option<Bytes>,
    /// Query input and output bytes effbench handed over and read back inside the window.
    pub input_bytes: Bytes,
    pub output_bytes: Bytes,
    /// `issue` messages sent inside the window.
    pub issues: u64,
    /// Worst relative error of any output against effbench's f32 reference (see
    /// `backend::external::check`).
    pub max_rel_error: f64,
    /// The workload's quality on effbench's own f32 answers, for the lower-precision rule.
    pub reference_quality: f64,
}

/// One run: everything needed to compare it with a baseline later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Always [`SCHEMA`].
    pub schema: String,
    pub effbench_version: String,
    /// RFC 3339.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The command line (argv) that produced this file.
    pub command: Vec<String>,
    pub workload: WorkloadInfo,
    pub recipe: RecipeInfo,
    pub backend: BackendInfo,
    pub system: SystemInfo,
    pub energy_sources: Vec<SourceInfo>,
    /// Idle power per domain, from the idle window before the repeats.
    pub idle_power_w: BTreeMap<String, Watts>,
    pub repeats: Vec<Repeat>,
    /// Measured GEMM peak used for `fraction_of_peak`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_flops_per_s: Option<f64>,
    /// Testing only (`run --plant-slowdown F`): every repeat's work was followed, inside its
    /// window, by a busy-wait of F times the work's own time on every thread. Such a result is
    /// not a genuine measurement; `compare` and `gate` warn when they see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planted_slowdown: Option<f64>,
    /// Informational statistics over valid repeats (see [`RunResult::summarise`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub summary: BTreeMap<String, Summary>,
}

impl RunResult {
    /// Reads and validates a result file. The `schema` field is checked before the rest, so a
    /// file from a future version gets a schema error rather than a missing-field error.
    ///
    /// Only a regular file (after following links) of at most [`MAX_RESULT_BYTES`] is read, and
    /// through a bounded reader: a FIFO, a device or a huge file is refused, not waited on.
    pub fn load(path: &Path) -> Result<RunResult, ResultError> {
        Self::from_json(&read_bounded(path)?, path)
    }

    /// Parses result JSON; `path` is only used in error messages.
    pub fn from_json(text: &str, path: &Path) -> Result<RunResult, ResultError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ResultError::Syntax {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        match value.get("schema") {
            None => return Err(ResultError::MissingSchema { path: path.to_path_buf() }),
            Some(serde_json::Value::String(s)) if READS.contains(&s.as_str()) => {}
            Some(other) => {
                return Err(ResultError::UnsupportedSchema {
                    path: path.to_path_buf(),
                    found: other.as_str().map_or_else(|| other.to_string(), str::to_string),
                    supported: READS.join(", "),
                })
            }
        }
        // Parse the text again (not the Value) so type errors carry a line and column.
        serde_json::from_str(text).map_err(|e| ResultError::Invalid {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    /// Writes the result atomically as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), ResultError> {
        write_json_atomic(path, self).map_err(|source| ResultError::Write { path: path.to_path_buf(), source })
    }

    /// Fills `summary` with median, mean and bootstrap interval over the valid repeats of:
    /// `wall_s`, `energy_j`, `dynamic_energy_j`, `energy_per_unit_j`, `avg_power_w`,
    /// `throughput_per_s`, `quality`, and (where every valid repeat has it)
    /// `samples_to_target`, `bytes_to_target`, `unique_samples`, `peak_rss_bytes`.
    pub fn summarise(&mut self, seed: u64) {
        let valid: Vec<&Repeat> = self.repeats.iter().filter(|r| r.valid).collect();
        let mut summary = BTreeMap::new();
        let mut add = |name: &str, values: Option<Vec<f64>>| {
            if let Some(s) = values.and_then(|v| Summary::of(&v, seed)) {
                summary.insert(name.to_string(), s);
            }
        };
        let all = |f: &dyn Fn(&Repeat) -> f64| -> Option<Vec<f64>> { Some(valid.iter().map(|r| f(r)).collect()) };
        let each = |f: &dyn Fn(&Repeat) -> Option<f64>| -> Option<Vec<f64>> { valid.iter().map(|r| f(r)).collect() };
        add("wall_s", all(&|r| r.wall_s.0));
        add("energy_j", all(&|r| r.energy_j.total.0));
        add("dynamic_energy_j", all(&|r| r.dynamic_energy_j.total.0));
        add("energy_per_unit_j", all(&|r| r.energy_per_unit_j.0));
        add("avg_power_w", all(&|r| r.avg_power_w.0));
        add("throughput_per_s", all(&|r| r.throughput_per_s));
        add("quality", each(&|r| r.quality));
        add("samples_to_target", each(&|r| r.samples_to_target.map(|x| x as f64)));
        add("bytes_to_target", each(&|r| r.bytes_to_target.map(|x| x.0 as f64)));
        add("unique_samples", each(&|r| r.unique_samples.map(|x| x as f64)));
        add("peak_rss_bytes", each(&|r| r.peak_rss_bytes.map(|x| x.0 as f64)));
        self.summary = summary;
    }
}

/// The text of the result file at `path`, refusing what is not a regular file of at most
/// [`MAX_RESULT_BYTES`].
fn read_bounded(path: &Path) -> Result<String, ResultError> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let read_err = |source| ResultError::Read { path: path.to_path_buf(), source };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Ok(target) = std::fs::read_link(path) {
                return Err(ResultError::DanglingLink { path: path.to_path_buf(), target });
            }
            return Err(read_err(e));
        }
        Err(e) => return Err(read_err(e)),
    };
    let t = meta.file_type();
    let what = if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(ResultError::NotAFile { path: path.to_path_buf(), what });
    }
    if meta.len() > MAX_RESULT_BYTES {
        return Err(ResultError::TooLarge { path: path.to_path_buf(), bytes: meta.len() });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(MAX_RESULT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_RESULT_BYTES {
        // It grew between the size check and the read.
        return Err(ResultError::TooLarge { path: path.to_path_buf(), bytes: bytes.len() as u64 });
    }
    String::from_utf8(bytes)
        .map_err(|e| read_err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})"))))
}

#[cfg(test)]
mod tests;
