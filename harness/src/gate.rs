//! The CI regression gate (`effbench gate`): did this change make a workload worse, beyond
//! noise?
//!
//! Per workload and metric the gate takes the change `candidate / baseline - 1` (ratio of
//! means over the repeats) with the same seeded 95% bootstrap interval as `compare` (the
//! studentized interval of [`crate::verdict`], mirrored: a change of `+x` is a reduction of
//! `-x`), and applies criterion's compare-to-threshold rule with threshold `max_regression`:
//!
//! - **regression** when the interval's lower end is above `+max_regression`: the candidate
//!   is worse by more than the threshold, beyond noise;
//! - **improved** when its upper end is below `-max_regression`;
//! - **no change** otherwise (the change is within the threshold, or noise cannot tell).
//!
//! Outcomes that are not a comparison:
//!
//! - **invalid** (the gate fails): a candidate repeat missed the quality target, the baseline
//!   has no valid repeat (the CLI refuses such a baseline first, exit 2: it is bad input, see
//!   [`crate::baseline::check_usable`]), or a metric is missing. A faster run that no longer reaches its
//!   target is not an improvement.
//! - **skipped** (the gate does not fail, and says why): energy measured on one side and
//!   estimated on the other, or from other domains, cannot be compared (calling it a pass
//!   would hide a change, calling it a regression would be a false alarm); a candidate
//!   workload with no baseline.
//!
//! Metrics (`--metrics`, default energy, time, data): energy (`energy_j` for training,
//! `energy_per_unit_j` for inference); time, the process's CPU time (`cpu_s`,
//! `cpu_per_unit_s`; wall-clock time where a side did not record it); wall, wall-clock time
//! (`wall_s`, `time_per_unit_s`); data (`samples_to_target` and `bytes_to_target`,
//! `bytes_per_unit`). Unique samples are informational in `compare` and not gated.
//!
//! **Why CPU time by default.** On a shared machine (a CI runner, or this 2-core VM with other
//! builds beside it) the wall-clock time of a whole run swings with the neighbours' load, and
//! the repeats of one run swing together, so no interval over one run's repeats can see it:
//! measured here under other builds, A/A wall-time ratios of whole runs ranged from 0.44 to 2.59
//! (README.md, "Calibration of the gate"), CPU-time ratios from 0.89 to 1.23.
//!
//! **Pairing by seed (training).** Repeat `i` of every run uses seed `i`: for a training
//! workload, the same initial weights and the same data order. Within one recipe, the seed is
//! most of the spread between repeats
//! (on this machine, `fmnist-mlp-train` needs 39k to 47k samples to reach its target depending
//! on the seed, and its time follows); a gate compares one recipe with itself after a change,
//! so when both sides ran the same seeds it resamples the repeats in seed pairs
//! (`Sides::Paired`) and what the seed does to both sides cancels. Resampling them apart
//! (as `compare` does, where the recipes differ) buries part of a slowdown in the seeds'
//! spread: on one set of 20 calibration rounds, CPU time caught a planted 20% slowdown 9 times
//! unpaired and 15 times paired, with no false alarm either way (another set: 6 and 8 times,
//! with 0 and 2 false alarms) (README.md, "Calibration of
//! the gate"). Inference repeats do not depend on their seed (same weights, same queries), so
//! they are always resampled apart: pairing them buys nothing and, with 5 pairs, widens the
//! interval's tails (measured: 9 of 20 planted slowdowns caught paired, 15 unpaired). Sides with different seeds are resampled apart.
//!
//! Candidates and baselines are files or directories of result files, matched by workload id.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::result::{RunResult, WorkloadKind};
use crate::verdict::{self, Resource, INFORMATIONAL};

/// What the gate checks (`--metrics`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateMetric {
    /// Energy to target (training) or per unit (inference).
    Energy,
    /// The process's CPU time to target or per unit: unlike wall-clock time, other processes on
    /// a shared CI machine do not inflate it. Falls back to wall-clock time when a side did not
    /// record CPU time (results from before it was recorded).
    Time,
    /// Wall-clock time to target or per unit.
    Wall,
    /// Samples and bytes to target (training) or bytes per unit (inference).
    Data,
}

impl GateMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            GateMetric::Energy => "energy",
            GateMetric::Time => "time",
            GateMetric::Wall => "wall",
            GateMetric::Data => "data",
        }
    }
}

impl std::fmt::Display for GateMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for GateMetric {
    type Err = String;

    fn from_str(s: &str) -> Result<GateMetric, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "energy" => Ok(GateMetric::Energy),
            "time" => Ok(GateMetric::Time),
            "wall" => Ok(GateMetric::Wall),
            "data" => Ok(GateMetric::Data),
            other => Err(format!("unknown metric {other:?}; expected energy, time, wall or data")),
        }
    }
}

/// The metrics of `m` for a workload of `kind`, and their getters. `time` is CPU time when
/// every repeat of both sides has it (`cpu_both`), else wall-clock time.
fn gate_metrics(m: GateMetric, kind: WorkloadKind, cpu_both: bool) -> Vec<(&'static str, verdict::Getter)> {
    let of = |r: Resource| verdict::metrics(r, kind).into_iter().filter(|(n, _)| !INFORMATIONAL.contains(n)).collect();
    match (m, kind) {
        (GateMetric::Energy, _) => of(Resource::Energy),
        (GateMetric::Data, _) => of(Resource::Data),
        (GateMetric::Wall, _) => of(Resource::Time),
        (GateMetric::Time, _) if !cpu_both => of(Resource::Time),
        (GateMetric::Time, WorkloadKind::Train) => vec![("cpu_s", |r| r.cpu_s.map(|s| s.0))],
        (GateMetric::Time, WorkloadKind::Infer) => {
            vec![("cpu_per_unit_s", |r| r.cpu_s.map(|s| s.0 / r.units_processed.max(1) as f64))]
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GateOptions {
    /// Largest tolerated slowdown or growth, e.g. 0.05 for 5%.
    pub max_regression: f64,
    pub metrics: Vec<GateMetric>,
    /// Resample the sides apart even when they ran the same seeds (for calibration).
    pub unpaired: bool,
    /// Bootstrap resamples per metric.
    pub resamples: usize,
    pub seed: u64,
    /// The energy scope to gate at (`--scope`); `None`: the widest both sides measured.
    pub scope: Option<crate::scope::Scope>,
}

impl Default for GateOptions {
    fn default() -> GateOptions {
        GateOptions {
            max_regression: 0.05,
            metrics: vec![GateMetric::Energy, GateMetric::Time, GateMetric::Data],
            unpaired: false,
            resamples: 10_000,
            seed: 0,
            scope: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Regression,
    Improved,
    NoChange,
    /// Fails the gate: the candidate run is not valid, or the metric cannot be computed.
    Invalid {
        reason: String,
    },
    /// Not gated, with the reason (incomparable energy, no baseline).
    Skipped {
        reason: String,
    },
    /// Fails the gate (exit 3 unless something worse happened): too few valid repeats on a
    /// side to decide anything ([`crate::validity::MIN_REPEATS`]); never a pass.
    Undecided {
        reason: String,
    },
}

impl Outcome {
    pub fn fails(&self) -> bool {
        matches!(self, Outcome::Regression | Outcome::Invalid { .. } | Outcome::Undecided { .. })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Regression => f.write_str("REGRESSION"),
            Outcome::Improved => f.write_str("improved"),
            Outcome::NoChange => f.write_str("no change"),
            Outcome::Invalid { reason } => write!(f, "INVALID: {reason}"),
            Outcome::Skipped { reason } => write!(f, "skipped: {reason}"),
            Outcome::Undecided { reason } => write!(f, "CANNOT DECIDE: {reason}"),
        }
    }
}

/// One workload and metric.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateCase {
    pub resource: GateMetric,
    /// `energy_j`, `wall_s`, ...; `baseline` for a workload with no baseline.
    pub metric: String,
    /// NaN (JSON null) where not computed.
    pub baseline_mean: f64,
    pub candidate_mean: f64,
    /// `candidate_mean / baseline_mean - 1`: positive is worse.
    pub change: f64,
    /// 95% interval of `change`.
    pub ci95: [f64; 2],
    pub n_baseline: usize,
    pub n_candidate: usize,
    /// Whether the interval paired the repeats by seed (see the module documentation).
    pub paired: bool,
    /// Gate from history only: how many earlier runs' means the interval comes from
    /// (`n_baseline` then counts their repeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_runs: Option<usize>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl GateCase {
    fn bare(resource: GateMetric, metric: &str, outcome: Outcome) -> GateCase {
        GateCase {
            resource,
            metric: metric.to_string(),
            baseline_mean: f64::NAN,
            candidate_mean: f64::NAN,
            change: f64::NAN,
            ci95: [f64::NAN, f64::NAN],
            n_baseline: 0,
            n_candidate: 0,
            paired: false,
            history_runs: None,
            outcome,
        }
    }
}

/// The gate's findings for one candidate workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadGate {
    pub workload: String,
    pub candidate: PathBuf,
    pub baseline: Option<PathBuf>,
    /// `measured`, `estimated`, `vendor-reported`: the weaker side's provenance at the scope
    /// gated.
    pub energy_label: String,
    /// The scope energy was gated at and each side's domains there; absent when none could be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_scope: Option<crate::scope::ScopePair>,
    pub warnings: Vec<String>,
    /// How the intervals were computed, where the reader should know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub cases: Vec<GateCase>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateReport {
    pub max_regression: f64,
    /// Gate from history: the N of `--baseline history:N` (the rule differs; see [`history`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<usize>,
    pub workloads: Vec<WorkloadGate>,
    /// Baselines with no candidate (not an error: a quick suite gated against full baselines).
    pub baselines_unused: Vec<String>,
    pub exit_code: crate::error::Exit,
}

impl GateReport {
    pub fn cases(&self) -> impl Iterator<Item = (&WorkloadGate, &GateCase)> {
        self.workloads.iter().flat_map(|w| w.cases.iter().map(move |c| (w, c)))
    }

    pub fn count(&self, pred: impl Fn(&Outcome) -> bool) -> usize {
        self.cases().filter(|(_, c)| pred(&c.outcome)).count()
    }

    /// Cases that were actually compared (regression, improved or no change).
    pub fn gated(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Regression | Outcome::Improved | Outcome::NoChange))
    }
}

pub use load::{load_results, GateError};

/// Gates every candidate against the baseline of the same workload.
pub fn gate_sets(
    candidates: &BTreeMap<String, (PathBuf, RunResult)>,
    baselines: &BTreeMap<String, (PathBuf, RunResult)>,
    opts: &GateOptions,
) -> Result<GateReport, GateError> {
    if !candidates.keys().any(|k| baselines.contains_key(k)) {
        return Err(GateError::NothingMatched {
            candidates: candidates.keys().cloned().collect(),
            baselines: baselines.keys().cloned().collect(),
        });
    }
    let mut workloads = Vec::new();
    for (id, (cpath, cand)) in candidates {
        match baselines.get(id) {
            Some((bpath, base)) => {
                let mut w = gate_one(cand, base, opts);
                w.candidate = cpath.clone();
                w.baseline = Some(bpath.clone());
                workloads.push(w);
            }
            None => workloads.push(WorkloadGate {
                workload: id.clone(),
                candidate: cpath.clone(),
                baseline: None,
                energy_label: verdict::weakest_label(cand).to_string(),
                energy_scope: None,
                warnings: vec![],
                notes: vec![],
                cases: vec![GateCase::bare(
                    GateMetric::Data,
                    "baseline",
                    Outcome::Skipped { reason: "no baseline for this workload".into() },
                )],
            }),
        }
    }
    let baselines_unused = baselines.keys().filter(|k| !candidates.contains_key(*k)).cloned().collect();
    finish(workloads, baselines_unused, opts)
}

/// The report over gated workloads: an error when every case was skipped, else the exit code.
fn finish(
    workloads: Vec<WorkloadGate>,
    baselines_unused: Vec<String>,
    opts: &GateOptions,
) -> Result<GateReport, GateError> {
    let mut report = GateReport {
        max_regression: opts.max_regression,
        history: None,
        workloads,
        baselines_unused,
        exit_code: crate::error::Exit::Ok,
    };
    if report.gated() == 0 && report.count(|o| o.fails()) == 0 {
        let reasons: std::collections::BTreeSet<String> = report
            .cases()
            .filter_map(|(_, c)| match &c.outcome {
                Outcome::Skipped { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        return Err(GateError::AllSkipped(reasons.into_iter().collect::<Vec<_>>().join("; ")));
    }
    report.exit_code = exit_code(&report);
    Ok(report)
}

/// 4 when a case is invalid (the candidate run is not a valid run), else 1 on a regression,
/// else 3 when a case could not be decided, else 0.
fn exit_code(r: &GateReport) -> crate::error::Exit {
    use crate::error::Exit;
    if r.count(|o| matches!(o, Outcome::Invalid { .. })) > 0 {
        Exit::Invalid
    } else if r.count(|o| *o == Outcome::Regression) > 0 {
        Exit::NotMet
    } else if r.count(|o| matches!(o, Outcome::Undecided { .. })) > 0 {
        Exit::Inconclusive
    } else {
        Exit::Ok
    }
}

/// criterion's rule: regression when the whole interval is above `+threshold`, improved when
/// it is below `-threshold`, no change otherwise.
pub fn judge(ci: [f64; 2], threshold: f64) -> Outcome {
    if ci[0] > threshold {
        Outcome::Regression
    } else if ci[1] < -threshold {
        Outcome::Improved
    } else {
        Outcome::NoChange
    }
}

/// Gates every candidate against its history from the store (`histories`: per workload id,
/// the source's description and the runs, newest first; `n`: the N asked for; see [`history`]).
pub fn gate_history_sets(
    candidates: &BTreeMap<String, (PathBuf, RunResult)>,
    histories: &BTreeMap<String, (String, Vec<history::HistoryRun>)>,
    n: usize,
    opts: &GateOptions,
) -> Result<GateReport, GateError> {
    let mut workloads = Vec::new();
    for (id, (cpath, cand)) in candidates {
        let (source, runs) = histories.get(id).map_or(("the store", &[][..]), |(s, r)| (s.as_str(), &r[..]));
        let mut w = history::gate_history(cand, runs, source, opts);
        w.candidate = cpath.clone();
        workloads.push(w);
    }
    let mut report = finish(workloads, Vec::new(), opts)?;
    report.history = Some(n);
    Ok(report)
}

pub mod history;
mod load;
mod one;

pub use one::gate_one;

#[cfg(test)]
mod tests;
