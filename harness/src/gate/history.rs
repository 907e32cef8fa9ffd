//! The gate from history (`gate CANDIDATE --baseline history[:N]`): the candidate against the
//! spread of the run means of the last N runs of the same workload, recipe, machine class and
//! backend in the store.
//!
//! A within-run interval (the bootstrap over one run's repeats, as in [`super::gate_one`])
//! cannot see how much identical work drifts from one run to the next on a shared machine: on
//! this project's VM, ~10% (README.md, "Calibration of the gate"). History can: the run means
//! of N earlier runs vary by exactly the between-run noise (plus the within-run noise of a run
//! mean), which is the noise of the candidate's own run mean under no change. So per metric:
//!
//! - `change = candidate_mean / mean(history means) - 1`, and its 95% interval from the t
//!   prediction interval of a new run mean ([`crate::stats::shift_interval`]);
//! - **regression** when the interval's lower end is above 0 (beyond the history's noise) and
//!   the change exceeds `max_regression` (large enough to matter): Bencher's rule (alert when a
//!   new value falls outside the boundary its history sets) with a practical floor;
//! - **improved** symmetrically; **no change** otherwise.
//!
//! Fewer than [`MIN_RUNS`] usable runs cannot bound the spread (t with one degree of freedom
//! gives ±12.7 s.d.), so the case cannot be decided (exit 3), never passes.

use std::path::PathBuf;

use crate::result::{Repeat, RunResult};
use crate::stats;
use crate::validity;
use crate::verdict;

use super::{gate_metrics, GateCase, GateMetric, GateOptions, Outcome, WorkloadGate};

/// Fewest history runs a decision uses.
pub const MIN_RUNS: usize = 3;

/// One earlier run from the store.
#[derive(Clone, Debug)]
pub struct HistoryRun {
    /// Where it came from (the store's run id and the result file's path), for the notes.
    pub label: String,
    pub result: RunResult,
}

/// The history rule: beyond the history's noise (the interval excludes 0) and beyond the
/// threshold (the point estimate).
pub fn judge(change: f64, ci: [f64; 2], threshold: f64) -> Outcome {
    if ci[0] > 0.0 && change > threshold {
        Outcome::Regression
    } else if ci[1] < 0.0 && change < -threshold {
        Outcome::Improved
    } else {
        Outcome::NoChange
    }
}

/// A history run's valid repeats, or why it is left out.
fn usable<'a>(candidate: &RunResult, run: &'a HistoryRun) -> Result<Vec<&'a Repeat>, String> {
    let r = &run.result;
    if r.workload.id != candidate.workload.id || r.workload.kind != candidate.workload.kind {
        return Err(format!("{} is another workload ({})", run.label, r.workload.id));
    }
    if r.planted_slowdown.is_some() {
        return Err(format!("{} has a planted slowdown", run.label));
    }
    let reps: Vec<&Repeat> = r.repeats.iter().filter(|rep| validity::is_valid(r, rep)).collect();
    if reps.len() < validity::MIN_REPEATS {
        return Err(format!("{} has {} valid repeat(s), fewer than {}", run.label, reps.len(), validity::MIN_REPEATS));
    }
    Ok(reps)
}

/// Gates one candidate result against its history (newest first). `source` names the store
/// and the query, for the report's baseline column.
pub fn gate_history(candidate: &RunResult, history: &[HistoryRun], source: &str, opts: &GateOptions) -> WorkloadGate {
    let mut notes = Vec::new();
    let mut runs: Vec<(&HistoryRun, Vec<&Repeat>)> = Vec::new();
    for run in history {
        match usable(candidate, run) {
            Ok(reps) => runs.push((run, reps)),
            Err(why) => notes.push(format!("left out of the history: {why}")),
        }
    }
    let mut warnings = match runs.first() {
        Some((newest, _)) => verdict::warnings(candidate, &newest.result),
        None => verdict::warnings(candidate, candidate),
    };
    warnings.dedup();
    let kind = candidate.workload.kind;
    let cpu_both = candidate.repeats.iter().all(|r| r.cpu_s.is_some())
        && runs.iter().all(|(_, reps)| reps.iter().all(|r| r.cpu_s.is_some()));
    let mut seen = std::collections::BTreeSet::new();
    let names: Vec<(GateMetric, &'static str, verdict::Getter)> = opts
        .metrics
        .iter()
        .flat_map(|&m| gate_metrics(m, kind, cpu_both).into_iter().map(move |(n, g)| (m, n, g)))
        .filter(|(_, n, _)| seen.insert(*n))
        .collect();
    let cand: Vec<&Repeat> = candidate.repeats.iter().collect();
    let whole = |outcome: Outcome| -> Vec<GateCase> {
        names.iter().map(|(m, n, _)| GateCase::bare(*m, n, outcome.clone())).collect()
    };
    let invalid = cand.iter().enumerate().find_map(|(i, r)| validity::numbers(candidate, r).err().map(|w| (i, r, w)));
    let mut energy_scope = None;
    let mut energy_label = verdict::weakest_label(candidate).to_string();
    let cases = if cand.is_empty() {
        whole(Outcome::Invalid { reason: "the candidate has no repeats".into() })
    } else if let Some((i, r, why)) = invalid {
        whole(Outcome::Invalid { reason: format!("candidate repeat {} (seed {}) is invalid: {why}", i + 1, r.seed) })
    } else if cand.len() < validity::MIN_REPEATS {
        whole(Outcome::Undecided {
            reason: format!(
                "{} candidate repeat(s); a decision needs at least {}: run more repeats",
                cand.len(),
                validity::MIN_REPEATS
            ),
        })
    } else if runs.len() < MIN_RUNS {
        whole(Outcome::Undecided {
            reason: format!(
                "the store holds {} usable earlier run(s) of {} with this recipe, machine class and backend; a gate \
                 from history needs at least {MIN_RUNS}: record more runs, or gate against a baseline file",
                runs.len(),
                candidate.workload.id
            ),
        })
    } else {
        let mut out = Vec::new();
        for &(metric, name, get) in &names {
            let (case, pair) = if metric == GateMetric::Energy {
                energy_case(candidate, &cand, &runs, name, opts)
            } else {
                let values = |r: &[&Repeat]| r.iter().map(|x| get(x)).collect::<Vec<_>>();
                let hist = runs.iter().map(|(_, reps)| values(reps)).collect();
                (case(metric, name, values(&cand), hist, opts), None)
            };
            if let Some(p) = pair {
                energy_label = p.label.to_string();
                warnings.extend(p.warnings.iter().cloned());
                energy_scope = Some(p);
            }
            out.push(case);
        }
        out
    };
    if runs.len() >= MIN_RUNS {
        let (newest, oldest) = (&runs[0].0.result.created_at, &runs[runs.len() - 1].0.result.created_at);
        notes.push(format!(
            "judged against the spread of the run means of {} earlier runs ({} to {}): a regression lies beyond their \
             95% prediction interval and more than {:.1}% above their mean",
            runs.len(),
            oldest.format("%Y-%m-%d %H:%M"),
            newest.format("%Y-%m-%d %H:%M"),
            100.0 * opts.max_regression
        ));
    }
    WorkloadGate {
        workload: candidate.workload.id.clone(),
        candidate: PathBuf::new(),
        baseline: Some(PathBuf::from(source)),
        energy_label,
        energy_scope,
        warnings,
        notes,
        cases,
    }
}

/// Energy at the scope the candidate and the newest history run share; history runs that do
/// not measure that scope are left out of the energy case.
fn energy_case(
    candidate: &RunResult,
    cand: &[&Repeat],
    runs: &[(&HistoryRun, Vec<&Repeat>)],
    name: &str,
    opts: &GateOptions,
) -> (GateCase, Option<crate::scope::ScopePair>) {
    let pair = match crate::scope::choose(candidate, &runs[0].0.result, opts.scope) {
        Ok(p) => p,
        Err(e) => {
            let at = e.scope.map_or(String::new(), |s| format!(" at {s} scope"));
            let reason = format!("incomparable energy{at}: {}", e.reason);
            return (GateCase::bare(GateMetric::Energy, name, Outcome::Skipped { reason }), None);
        }
    };
    let hist = runs
        .iter()
        .filter(|(run, _)| {
            crate::scope::choose(candidate, &run.result, Some(pair.scope)).is_ok_and(|p| p.label == pair.label)
        })
        .map(|(run, reps)| crate::scope::pair::energy_values(&run.result, reps, pair.scope).1)
        .collect();
    let (_, c) = crate::scope::pair::energy_values(candidate, cand, pair.scope);
    (case(GateMetric::Energy, name, c, hist, opts), Some(pair))
}

/// One case from the candidate's per-repeat values and each history run's.
fn case(
    metric: GateMetric,
    name: &str,
    cand: Vec<Option<f64>>,
    hist: Vec<Vec<Option<f64>>>,
    opts: &GateOptions,
) -> GateCase {
    let finite = |v: &[Option<f64>]| -> Option<Vec<f64>> { v.iter().map(|x| x.filter(|x| x.is_finite())).collect() };
    let Some(c) = finite(&cand) else {
        let reason = format!("{name} is missing or not finite in some candidate repeats");
        return GateCase::bare(metric, name, Outcome::Invalid { reason });
    };
    // A history run missing the metric in a repeat says nothing about it: leave it out.
    let runs: Vec<Vec<f64>> = hist.iter().filter_map(|v| finite(v)).collect();
    let means: Vec<f64> = runs.iter().map(|v| crate::stats::mean(v)).collect();
    let mc = crate::stats::mean(&c);
    let mut out = GateCase {
        candidate_mean: mc,
        n_candidate: c.len(),
        n_baseline: runs.iter().map(Vec::len).sum(),
        history_runs: Some(means.len()),
        ..GateCase::bare(metric, name, Outcome::NoChange)
    };
    if means.len() < MIN_RUNS {
        let reason =
            format!("{name}: {} earlier run(s) record it; a gate from history needs at least {MIN_RUNS}", means.len());
        out.outcome = Outcome::Undecided { reason };
        return out;
    }
    let Some((mb, [lo, hi])) = stats::shift_interval(&means, mc, 0.95) else {
        out.outcome = Outcome::Invalid { reason: format!("{name}: the history's run means are not finite") };
        return out;
    };
    out.baseline_mean = mb;
    if !(mb > 0.0 && mc > 0.0) {
        out.outcome = Outcome::Invalid { reason: format!("{name}: a ratio needs finite positive means") };
        return out;
    }
    out.change = mc / mb - 1.0;
    out.ci95 = [lo / mb, hi / mb];
    out.outcome = judge(out.change, out.ci95, opts.max_regression);
    out
}

#[cfg(test)]
mod tests;
