//! Candidate vs baseline: per-resource reduction with a bootstrap 95% interval, and the verdict
//! against the target (design.md, "Verdict").

//!
//! The statistic (a studentized bootstrap interval of the ratio of means) is in
//! [`crate::stats::reduction`], shared with `gate`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::result::{Repeat, RunResult, WorkloadKind};
use crate::stats::{fnv1a, mean, reduction_interval, Sides};

/// Most repeats [`Verdict::Inconclusive`] will suggest.
pub const MAX_REPEATS_NEEDED: usize = 1000;

/// A resource whose use the candidate should reduce.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Energy,
    Data,
    Time,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Energy => "energy",
            Resource::Data => "data",
            Resource::Time => "time",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resource {
    type Err = String;

    fn from_str(s: &str) -> Result<Resource, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "energy" => Ok(Resource::Energy),
            "data" => Ok(Resource::Data),
            "time" => Ok(Resource::Time),
            other => Err(format!("unknown resource {other:?}; expected energy, data or time")),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CompareOptions {
    /// Required reduction, e.g. 0.5 for "at least 50% less".
    pub target: f64,
    /// Resources to judge; the overall verdict is met only if every one is met.
    pub resources: Vec<Resource>,
    /// Bootstrap resamples per metric (at least 10,000 for a reported verdict).
    pub resamples: usize,
    pub seed: u64,
    /// The energy scope to compare at (`--scope`); `None`: the widest both sides measured.
    pub scope: Option<crate::scope::Scope>,
}

impl Default for CompareOptions {
    fn default() -> CompareOptions {
        CompareOptions {
            target: 0.5,
            resources: vec![Resource::Energy, Resource::Data],
            resamples: 10_000,
            seed: 0,
            scope: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The interval's lower end is at or above the target.
    Met,
    /// The interval's upper end is below the target.
    NotMet,
    /// The interval straddles the target; `repeats_needed` (per side) would likely settle it,
    /// `None` when the point estimate sits on the target (no number of repeats would).
    Inconclusive { repeats_needed: Option<usize> },
    /// No verdict: the candidate missed the quality target, the workloads differ, data missing.
    Invalid { reason: String },
    /// No verdict: the figures cannot be compared (measured vs estimated energy, other domains).
    Incomparable { reason: String },
}

impl Verdict {
    /// How the process ends on this verdict: 0 met, 1 not met, 3 inconclusive, 4 invalid or
    /// incomparable.
    pub fn exit_code(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            Verdict::Met => Exit::Ok,
            Verdict::NotMet => Exit::NotMet,
            Verdict::Inconclusive { .. } => Exit::Inconclusive,
            Verdict::Invalid { .. } | Verdict::Incomparable { .. } => Exit::Invalid,
        }
    }

    /// Combines verdicts that must all hold: invalid, then incomparable, then not met win;
    /// met only if all are met; otherwise inconclusive with the largest number of repeats
    /// needed (`None` if any part has none). An empty list is invalid.
    pub fn all(verdicts: &[Verdict]) -> Verdict {
        if verdicts.is_empty() {
            return Verdict::Invalid { reason: "nothing to judge".into() };
        }
        if let Some(v) = verdicts.iter().find(|v| matches!(v, Verdict::Invalid { .. })) {
            return v.clone();
        }
        if let Some(v) = verdicts.iter().find(|v| matches!(v, Verdict::Incomparable { .. })) {
            return v.clone();
        }
        if verdicts.contains(&Verdict::NotMet) {
            return Verdict::NotMet;
        }
        let mut needed: Option<Option<usize>> = None;
        for v in verdicts {
            if let Verdict::Inconclusive { repeats_needed } = v {
                needed = Some(match (needed, repeats_needed) {
                    (None, r) => *r,
                    (Some(Some(a)), Some(b)) => Some(a.max(*b)),
                    _ => None,
                });
            }
        }
        match needed {
            None => Verdict::Met,
            Some(repeats_needed) => Verdict::Inconclusive { repeats_needed },
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Met => f.write_str("met"),
            Verdict::NotMet => f.write_str("not met"),
            Verdict::Inconclusive { repeats_needed: Some(n) } => {
                write!(f, "inconclusive (about {n} repeats per side would likely settle it)")
            }
            Verdict::Inconclusive { repeats_needed: None } => {
                f.write_str("inconclusive (the estimate sits on the target; more repeats will not settle it)")
            }
            Verdict::Invalid { reason } => write!(f, "invalid: {reason}"),
            Verdict::Incomparable { reason } => write!(f, "incomparable: {reason}"),
        }
    }
}

/// One metric of one resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricRow {
    pub resource: Resource,
    /// `energy_j`, `energy_per_unit_j`, `samples_to_target`, `bytes_to_target`,
    /// `unique_samples`, `bytes_per_unit`, `wall_s`, `time_per_unit_s`.
    pub metric: String,
    /// NaN (JSON null) when the metric is missing.
    pub baseline_mean: f64,
    pub candidate_mean: f64,
    /// `1 - candidate_mean / baseline_mean`.
    pub reduction: f64,
    /// Bootstrap 95% interval of `reduction`.
    pub ci95: [f64; 2],
    pub n_baseline: usize,
    pub n_candidate: usize,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub workload: String,
    pub target: f64,
    /// `measured`, `estimated` or `vendor-reported`: the weaker side's provenance at the scope
    /// compared (the candidate's weakest when no scope could be).
    pub energy_label: String,
    /// The scope energy was compared at and each side's domains there; absent when none could be.
    pub energy_scope: Option<crate::scope::ScopePair>,
    pub rows: Vec<MetricRow>,
    pub resources: Vec<(Resource, Verdict)>,
    pub overall: Verdict,
    /// What the reader should know before trusting the verdict (see [`warnings`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub(crate) type Getter = fn(&Repeat) -> Option<f64>;

/// Metrics shown with their own interval and verdict that do not enter their resource's verdict.
pub const INFORMATIONAL: &[&str] = &["unique_samples"];

/// The metrics of `resource` for a workload of `kind`.
pub(crate) fn metrics(resource: Resource, kind: WorkloadKind) -> Vec<(&'static str, Getter)> {
    match (resource, kind) {
        (Resource::Energy, WorkloadKind::Train) => vec![("energy_j", |r| Some(r.energy_j.total.0))],
        (Resource::Energy, WorkloadKind::Infer) => vec![("energy_per_unit_j", |r| Some(r.energy_per_unit_j.0))],
        (Resource::Data, WorkloadKind::Train) => vec![
            ("samples_to_target", |r| r.samples_to_target.map(|x| x as f64)),
            ("bytes_to_target", |r| r.bytes_to_target.map(|x| x.0 as f64)),
            ("unique_samples", |r| r.unique_samples.map(|x| x as f64)),
        ],
        (Resource::Data, WorkloadKind::Infer) => vec![("bytes_per_unit", |r| r.bytes_per_unit.map(|x| x.0 as f64))],
        (Resource::Time, WorkloadKind::Train) => vec![("wall_s", |r| Some(r.wall_s.0))],
        (Resource::Time, WorkloadKind::Infer) => {
            vec![("time_per_unit_s", |r| (r.throughput_per_s > 0.0).then(|| 1.0 / r.throughput_per_s))]
        }
    }
}

/// Compares `candidate` with `baseline`. Statistics are recomputed from the repeats (the
/// files' `summary` is ignored): all of the candidate's repeats (any invalid one makes the
/// comparison invalid) and the baseline's valid repeats. Energy is compared at one scope
/// ([`crate::scope::choose`]): `opts.scope`, or the widest both sides measured.
pub fn compare(candidate: &RunResult, baseline: &RunResult, opts: &CompareOptions) -> Comparison {
    let pair = crate::scope::choose(candidate, baseline, opts.scope);
    let energy_label = match &pair {
        Ok(p) => p.label.to_string(),
        Err(_) => weakest_label(candidate).to_string(),
    };
    let mut warnings = warnings(candidate, baseline);
    if let Ok(p) = &pair {
        warnings.extend(p.warnings.iter().cloned());
    }
    let mut resources: Vec<Resource> = Vec::new();
    for r in &opts.resources {
        if !resources.contains(r) {
            resources.push(*r);
        }
    }
    let mut out = Comparison {
        workload: candidate.workload.id.clone(),
        target: opts.target,
        energy_label,
        energy_scope: pair.as_ref().ok().cloned(),
        rows: vec![],
        resources: vec![],
        overall: Verdict::Met,
        warnings,
    };
    let whole = |mut out: Comparison, reason: String| {
        let v = Verdict::Invalid { reason };
        out.resources = resources.iter().map(|r| (*r, v.clone())).collect();
        out.overall = v;
        out
    };
    if candidate.workload.id != baseline.workload.id || candidate.workload.kind != baseline.workload.kind {
        let why =
            format!("different workloads: candidate {:?}, baseline {:?}", candidate.workload.id, baseline.workload.id);
        return whole(out, why);
    }
    if !opts.target.is_finite() {
        return whole(out, format!("target {} is not a number", opts.target));
    }
    if candidate.repeats.is_empty() {
        return whole(out, "the candidate has no repeats".into());
    }
    // Validity recomputed from each repeat's numbers, never the file's flag (validity.rs).
    let invalid = candidate
        .repeats
        .iter()
        .enumerate()
        .find_map(|(i, r)| crate::validity::numbers(candidate, r).err().map(|why| (i, r, why)));
    if let Some((i, r, why)) = invalid {
        return whole(out, format!("candidate repeat {} (seed {}) is invalid: {why}", i + 1, r.seed));
    }
    let base: Vec<&Repeat> = baseline.repeats.iter().filter(|r| crate::validity::is_valid(baseline, r)).collect();
    if base.is_empty() {
        return whole(out, "the baseline has no valid repeats".into());
    }
    let cand: Vec<&Repeat> = candidate.repeats.iter().collect();

    let mut verdicts = Vec::new();
    for &resource in &resources {
        let mut parts = Vec::new();
        for (name, get) in metrics(resource, candidate.workload.kind) {
            let row = if resource == Resource::Energy {
                energy_row(candidate, baseline, &cand, &base, &pair, opts)
            } else {
                let (c, b) = (cand.iter().map(|r| get(r)).collect(), base.iter().map(|r| get(r)).collect());
                metric_row(resource, name, c, b, opts)
            };
            // Unique samples are reported but do not decide the data verdict: a method that
            // consumes far fewer samples from a small data set still touches all of it, and a
            // pruning method shows its cut here for the reader to weigh.
            if !INFORMATIONAL.contains(&name) {
                parts.push(row.verdict.clone());
            }
            out.rows.push(row);
        }
        verdicts.push((resource, Verdict::all(&parts)));
    }
    out.overall = Verdict::all(&verdicts.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
    out.resources = verdicts;
    out
}

/// The energy row at the pair's scope, or an incomparable row saying why there is none.
fn energy_row(
    candidate: &RunResult,
    baseline: &RunResult,
    cand: &[&Repeat],
    base: &[&Repeat],
    pair: &Result<crate::scope::ScopePair, crate::scope::NoPair>,
    opts: &CompareOptions,
) -> MetricRow {
    match pair {
        Ok(p) => {
            let (name, c) = crate::scope::pair::energy_values(candidate, cand, p.scope);
            let (_, b) = crate::scope::pair::energy_values(baseline, base, p.scope);
            metric_row(Resource::Energy, name, c, b, opts)
        }
        Err(e) => {
            let name = metrics(Resource::Energy, candidate.workload.kind)[0].0;
            let mut row = metric_row(Resource::Energy, name, vec![None], vec![None], opts);
            let at = e.scope.map_or(String::new(), |s| format!("at {s} scope: "));
            row.verdict = Verdict::Incomparable { reason: format!("{at}{}", e.reason) };
            row
        }
    }
}

/// Differences between two results that do not stop a comparison but may explain it: a
/// planted slowdown (a testing result, never a genuine one), other data sets, machine
/// classes or backends. The recipe is not among them: comparing recipes is what `compare`
/// is for (`gate` adds its own warning).
pub fn warnings(candidate: &RunResult, baseline: &RunResult) -> Vec<String> {
    let mut out = Vec::new();
    for (side, r) in [("candidate", candidate), ("baseline", baseline)] {
        if let Some(f) = r.planted_slowdown {
            out.push(format!(
                "the {side} is a TESTING result with a planted slowdown of {:.0}% (run --plant-slowdown): \
                 not a genuine measurement",
                100.0 * f
            ));
        }
    }
    if candidate.workload.dataset != baseline.workload.dataset {
        out.push(format!(
            "data sets differ: candidate {:?}, baseline {:?}",
            candidate.workload.dataset, baseline.workload.dataset
        ));
    }
    let (hc, hb) = (candidate.system.host_class(), baseline.system.host_class());
    if hc != hb {
        out.push(format!("machine classes differ: candidate {hc}, baseline {hb}"));
    }
    let be = |r: &RunResult| format!("{} {} {}", r.backend.kind, r.backend.device, r.backend.precision);
    if be(candidate) != be(baseline) {
        out.push(format!("backends differ: candidate {}, baseline {}", be(candidate), be(baseline)));
    }
    // Training through a runner may be `open` (any model): only like divisions compare like
    // architectures (effbench's own backends train the reference one: closed).
    let (dc, db) = (candidate.backend.division(), baseline.backend.division());
    if candidate.workload.kind == WorkloadKind::Train && dc != db {
        out.push(format!(
            "divisions differ: candidate {dc}, baseline {db} (an open run may train any model; a closed one the \
             reference architecture)"
        ));
    }
    out
}

/// One metric's row from each side's per-repeat values (`None`: missing in that repeat).
fn metric_row(
    resource: Resource,
    name: &str,
    cand: Vec<Option<f64>>,
    base: Vec<Option<f64>>,
    opts: &CompareOptions,
) -> MetricRow {
    let c: Option<Vec<f64>> = cand.iter().map(|x| x.filter(|x| x.is_finite())).collect();
    let b: Option<Vec<f64>> = base.iter().map(|x| x.filter(|x| x.is_finite())).collect();
    let mut row = MetricRow {
        resource,
        metric: name.to_string(),
        baseline_mean: b.as_deref().map_or(f64::NAN, mean),
        candidate_mean: c.as_deref().map_or(f64::NAN, mean),
        reduction: f64::NAN,
        ci95: [f64::NAN, f64::NAN],
        n_baseline: base.len(),
        n_candidate: cand.len(),
        verdict: Verdict::Met,
    };
    let (Some(c), Some(b)) = (c, b) else {
        row.verdict = Verdict::Invalid { reason: format!("{name} is missing or not finite in some repeats") };
        return row;
    };
    if !(row.baseline_mean > 0.0 && row.candidate_mean > 0.0 && (row.baseline_mean + row.candidate_mean).is_finite()) {
        row.verdict = Verdict::Invalid { reason: format!("{name}: a reduction needs finite positive means") };
        return row;
    }
    row.reduction = 1.0 - row.candidate_mean / row.baseline_mean;
    row.ci95 = reduction_interval(&c, &b, Sides::Unpaired, opts.resamples.max(1), opts.seed ^ fnv1a(name));
    row.verdict = if c.len().min(b.len()) < crate::validity::MIN_REPEATS {
        // Too few repeats to bound the interval: cannot decide, whatever it says; say how many.
        Verdict::Inconclusive { repeats_needed: Some(crate::validity::MIN_REPEATS) }
    } else {
        judge(row.reduction, row.ci95, opts.target, c.len().min(b.len()))
    };
    row
}

/// The verdict for point estimate `r` and interval `ci` against `target`, from `n` repeats
/// (the smaller side). For an inconclusive interval, the distance from the estimate to the
/// bound that must clear the target shrinks as `1/sqrt(n)`; it clears the target at
/// `n × (distance / |r - target|)²` repeats, capped at [`MAX_REPEATS_NEEDED`].
fn judge(r: f64, ci: [f64; 2], target: f64, n: usize) -> Verdict {
    if ci[0] >= target {
        return Verdict::Met;
    }
    if ci[1] < target {
        return Verdict::NotMet;
    }
    let gap = (r - target).abs();
    let spread = if r > target { r - ci[0] } else { ci[1] - r };
    if gap <= 1e-12 * target.abs().max(1.0) || !spread.is_finite() {
        return Verdict::Inconclusive { repeats_needed: None };
    }
    let needed = (n.max(1) as f64 * (spread / gap).powi(2) - 1e-9).ceil();
    let needed = if needed.is_finite() { (needed as usize).max(n + 1) } else { MAX_REPEATS_NEEDED };
    Verdict::Inconclusive { repeats_needed: Some(needed.min(MAX_REPEATS_NEEDED)) }
}

/// The weakest provenance among a run's energy sources: estimated, then vendor-reported.
pub(crate) fn weakest_label(r: &RunResult) -> &'static str {
    let ps: BTreeSet<&'static str> = r.energy_sources.iter().map(|s| crate::scope::pair::label(s.provenance)).collect();
    ["estimated", "vendor-reported", "measured"].into_iter().find(|l| ps.contains(l)).unwrap_or("measured")
}

#[cfg(test)]
pub(crate) mod tests;
