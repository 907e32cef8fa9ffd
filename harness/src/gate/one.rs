//! One candidate against one baseline: the warnings, what blocks a judgement, and a case per
//! metric (see the module above for the statistic and the rule).

use super::{gate_metrics, judge, GateCase, GateMetric, GateOptions, Outcome, WorkloadGate};
use crate::result::{Repeat, RunResult, WorkloadKind};
use crate::stats::Sides;
use crate::validity;
use crate::verdict;
use std::path::PathBuf;

/// Gates one candidate result against one baseline result.
pub fn gate_one(candidate: &RunResult, baseline: &RunResult, opts: &GateOptions) -> WorkloadGate {
    let pair = crate::scope::choose(candidate, baseline, opts.scope);
    let warnings = gate_warnings(candidate, baseline, &pair);
    let energy_label = match &pair {
        Ok(p) => p.label.to_string(),
        Err(_) => verdict::weakest_label(candidate).to_string(),
    };
    let kind = candidate.workload.kind;
    let cpu_both = candidate.repeats.iter().chain(&baseline.repeats).all(|r| r.cpu_s.is_some());
    let names = metric_names(&opts.metrics, kind, cpu_both);
    let mut cand: Vec<&Repeat> = candidate.repeats.iter().collect();
    // Validity recomputed from each repeat's numbers, never the file's flag (validity.rs).
    let mut base: Vec<&Repeat> = baseline.repeats.iter().filter(|r| validity::is_valid(baseline, r)).collect();
    cand.sort_by_key(|r| r.seed);
    base.sort_by_key(|r| r.seed);
    let seeds = |v: &[&Repeat]| v.iter().map(|r| r.seed).collect::<Vec<_>>();
    let same_seeds = seeds(&cand) == seeds(&base) && seeds(&cand).windows(2).all(|w| w[0] < w[1]);
    // Only a training repeat depends on its seed; inference repeats are exchangeable.
    let paired = !opts.unpaired && kind == WorkloadKind::Train && same_seeds;
    let mut notes = Vec::new();
    if opts.metrics.contains(&GateMetric::Time) && !cpu_both {
        notes.push(
            "a side has no CPU time per repeat (recorded by an older effbench), so `time` is wall-clock time, \
             which other load on the machine inflates"
                .to_string(),
        );
    }
    if kind == WorkloadKind::Train && !same_seeds {
        notes.push("the sides ran different seeds, so repeats were resampled unpaired (wider intervals)".to_string());
    }
    let sides = if paired { Sides::Paired } else { Sides::Unpaired };
    let cases = if let Some(outcome) = blocked(candidate, baseline, &cand, &base) {
        names.iter().map(|(r, n, _)| GateCase::bare(*r, n, outcome.clone())).collect()
    } else {
        names
            .iter()
            .map(|&(resource, name, get)| match (&pair, resource) {
                (Err(e), GateMetric::Energy) => {
                    let at = e.scope.map_or(String::new(), |s| format!(" at {s} scope"));
                    let reason = format!("incomparable energy{at}: {}", e.reason);
                    GateCase::bare(resource, name, Outcome::Skipped { reason })
                }
                (Ok(p), GateMetric::Energy) => {
                    let (_, c) = crate::scope::pair::energy_values(candidate, &cand, p.scope);
                    let (_, b) = crate::scope::pair::energy_values(baseline, &base, p.scope);
                    case(resource, name, c, b, sides, opts)
                }
                _ => {
                    let values = |v: &[&Repeat]| v.iter().map(|r| get(r)).collect();
                    case(resource, name, values(&cand), values(&base), sides, opts)
                }
            })
            .collect()
    };
    WorkloadGate {
        workload: candidate.workload.id.clone(),
        candidate: PathBuf::new(),
        baseline: None,
        energy_label,
        energy_scope: pair.ok(),
        warnings,
        notes,
        cases,
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// One case from each side's per-repeat values (`None`: missing in that repeat), in seed order.
fn case(
    resource: GateMetric,
    name: &str,
    cand: Vec<Option<f64>>,
    base: Vec<Option<f64>>,
    sides: Sides,
    opts: &GateOptions,
) -> GateCase {
    let c: Option<Vec<f64>> = cand.iter().map(|x| x.filter(|x| x.is_finite())).collect();
    let b: Option<Vec<f64>> = base.iter().map(|x| x.filter(|x| x.is_finite())).collect();
    let (Some(c), Some(b)) = (c, b) else {
        let reason = format!("{name} is missing or not finite in some repeats");
        return GateCase::bare(resource, name, Outcome::Invalid { reason });
    };
    let (mc, mb) = (crate::stats::mean(&c), crate::stats::mean(&b));
    let mut out = GateCase {
        baseline_mean: mb,
        candidate_mean: mc,
        n_baseline: b.len(),
        n_candidate: c.len(),
        paired: sides == Sides::Paired,
        ..GateCase::bare(resource, name, Outcome::NoChange)
    };
    if !(mb > 0.0 && mc > 0.0 && mb.is_finite() && mc.is_finite()) {
        out.outcome = Outcome::Invalid { reason: format!("{name}: a ratio needs finite positive means") };
        return out;
    }
    out.change = mc / mb - 1.0;
    // The reduction 1 - c/b is the negated change, so its interval mirrors.
    let red =
        crate::stats::reduction_interval(&c, &b, sides, opts.resamples.max(1), opts.seed ^ crate::stats::fnv1a(name));
    out.ci95 = [-red[1], -red[0]];
    out.outcome = judge(out.ci95, opts.max_regression);
    out
}

/// Each metric asked for once, in the order asked: (resource, metric name, its getter). `time`
/// falls back to wall-clock time (`cpu_both` false): with `wall` also asked for, it is gated once.
fn metric_names(
    asked: &[GateMetric],
    kind: WorkloadKind,
    cpu_both: bool,
) -> Vec<(GateMetric, &'static str, verdict::Getter)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut resources: Vec<GateMetric> = Vec::new();
    for r in asked {
        if !resources.contains(r) {
            resources.push(*r);
        }
    }
    resources
        .iter()
        .flat_map(|&r| gate_metrics(r, kind, cpu_both).into_iter().map(move |(n, g)| (r, n, g)))
        .filter(|(_, n, _)| seen.insert(*n))
        .collect()
}

/// The warnings of a gate: [`verdict::warnings`], recipes that differ, and the energy pair's.
fn gate_warnings(
    candidate: &RunResult,
    baseline: &RunResult,
    pair: &Result<crate::scope::ScopePair, crate::scope::NoPair>,
) -> Vec<String> {
    let mut warnings = verdict::warnings(candidate, baseline);
    if candidate.recipe.name != baseline.recipe.name || candidate.recipe.sha256 != baseline.recipe.sha256 {
        warnings.push(format!(
            "recipes differ: candidate {:?} ({}), baseline {:?} ({}); a gate compares like with like",
            candidate.recipe.name,
            short(&candidate.recipe.sha256),
            baseline.recipe.name,
            short(&baseline.recipe.sha256)
        ));
    }
    if let Ok(p) = pair {
        warnings.extend(p.warnings.iter().cloned());
    }
    warnings
}

/// Why no case of the gate can be judged, if none can: other workloads, a candidate without
/// repeats or with an invalid one, a baseline without valid repeats (all invalid), or too few
/// repeats for an interval (undecided).
fn blocked(candidate: &RunResult, baseline: &RunResult, cand: &[&Repeat], base: &[&Repeat]) -> Option<Outcome> {
    let invalid = |reason: String| Some(Outcome::Invalid { reason });
    if candidate.workload.id != baseline.workload.id || candidate.workload.kind != baseline.workload.kind {
        return invalid(format!(
            "different workloads: candidate {:?}, baseline {:?}",
            candidate.workload.id, baseline.workload.id
        ));
    }
    if cand.is_empty() {
        return invalid("the candidate has no repeats".into());
    }
    if let Some((i, r, why)) =
        cand.iter().enumerate().find_map(|(i, r)| validity::numbers(candidate, r).err().map(|w| (i, r, w)))
    {
        return invalid(format!("candidate repeat {} (seed {}) is invalid: {why}", i + 1, r.seed));
    }
    if base.is_empty() {
        return invalid("the baseline has no valid repeats".into());
    }
    if cand.len().min(base.len()) < validity::MIN_REPEATS {
        let reason = format!(
            "{} candidate and {} baseline valid repeat(s); a decision needs at least {} per side (fewer give \
             an unbounded interval): run more repeats",
            cand.len(),
            base.len(),
            validity::MIN_REPEATS
        );
        return Some(Outcome::Undecided { reason });
    }
    None
}
