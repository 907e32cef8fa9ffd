//! Which scope two runs' energy is compared at, and whether it can be: shared by `compare`,
//! `gate` and the bundle checker.
//!
//! Rules (issue 10): the scope asked for (`--scope`), else the widest scope both sides
//! measured (when that one cannot be compared, the answer says so and names a narrower scope
//! that can, rather than quietly narrowing); measured against measured gives a verdict;
//! vendor-reported on either side gives a verdict labelled `vendor-reported`, with a warning;
//! an estimate is compared only with an estimate of the same model (labelled `estimated`);
//! a scope whose energy is unresolved in any repeat, or whose windows are too short for its
//! slowest source, is incomparable.

use serde::Serialize;

use super::{measured_scopes, repeat_scope, scope_domains, scope_provenance, scope_sources, Scope};
use crate::result::{Repeat, RunResult, WorkloadKind};
use crate::sensor::Provenance;

/// The scope two runs' energy is compared at.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScopePair {
    pub scope: Scope,
    /// `measured`, `vendor-reported` or `estimated`: the weaker side's provenance at this scope.
    pub label: &'static str,
    pub candidate_domains: Vec<String>,
    pub baseline_domains: Vec<String>,
    /// What the reader must know before trusting the verdict (vendor-reported energy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Why two runs' energy cannot be compared, at the scope it was tried at (none when the sides
/// share no scope).
#[derive(Clone, Debug, PartialEq)]
pub struct NoPair {
    pub scope: Option<Scope>,
    pub reason: String,
}

pub fn label(p: Provenance) -> &'static str {
    match p {
        Provenance::Measured => "measured",
        Provenance::Estimated => "estimated",
        Provenance::VendorReported => "vendor-reported",
    }
}

/// The scope `c` and `b` are compared at: `requested`, or the widest both measured that can be
/// compared (see the module documentation).
pub fn choose(c: &RunResult, b: &RunResult, requested: Option<Scope>) -> Result<ScopePair, NoPair> {
    let (sc, sb) = (measured_scopes(c), measured_scopes(b));
    if let Some(s) = requested {
        for (side, scopes, r) in [("candidate", &sc, c), ("baseline", &sb, b)] {
            if !scopes.contains(&s) {
                return Err(NoPair { scope: Some(s), reason: missing(side, s, r, scopes) });
            }
        }
        return at(c, b, s);
    }
    let shared: Vec<Scope> = Scope::ALL.into_iter().rev().filter(|s| sc.contains(s) && sb.contains(s)).collect();
    let Some(&widest) = shared.first() else {
        return Err(NoPair {
            scope: None,
            reason: format!(
                "the sides measured no scope in common: candidate [{}], baseline [{}]",
                show_scopes(&sc, c),
                show_scopes(&sb, b)
            ),
        });
    };
    // No quiet narrowing: when the widest shared scope cannot be compared, the answer is
    // incomparable, and names a narrower scope that could be, for the user to ask for.
    at(c, b, widest).map_err(|mut e| {
        if let Some(s) = shared.iter().skip(1).find(|s| at(c, b, **s).is_ok()) {
            e.reason += &format!("; {s} scope can be compared: pass --scope {s}");
        }
        e
    })
}

fn missing(side: &str, s: Scope, r: &RunResult, scopes: &[Scope]) -> String {
    format!("the {side} did not measure {s} scope (it measured [{}])", show_scopes(scopes, r))
}

fn show_scopes(scopes: &[Scope], r: &RunResult) -> String {
    if scopes.is_empty() {
        let ds: Vec<String> = r.energy_sources.iter().map(|s| s.domain.clone()).collect();
        return format!("none; domains {}", ds.join(", "));
    }
    scopes.iter().map(|s| format!("{s}: {}", scope_domains(r, *s).join("+"))).collect::<Vec<_>>().join("; ")
}

/// Both sides at scope `s` (which both measured).
fn at(c: &RunResult, b: &RunResult, s: Scope) -> Result<ScopePair, NoPair> {
    let no = |reason: String| NoPair { scope: Some(s), reason };
    let (pc, pb) = (scope_provenance(c, s), scope_provenance(b, s));
    let (Some(pc), Some(pb)) = (pc, pb) else {
        return Err(no(format!("a side has no energy source at {s} scope")));
    };
    let est = Provenance::Estimated;
    if (pc == est) != (pb == est) {
        return Err(no(format!(
            "{s} energy is {} on the candidate and {} on the baseline; an estimate is compared only with an \
             estimate of the same model",
            label(pc),
            label(pb)
        )));
    }
    if pc == est && estimators(c, s) != estimators(b, s) {
        return Err(no(format!("{s} energy is estimated on both sides, but with different models")));
    }
    for (side, r) in [("candidate", c), ("baseline", b)] {
        if let Some(why) = unresolved(r, s) {
            return Err(no(format!("{side}: {why}")));
        }
    }
    let mut warnings = Vec::new();
    for (side, r, p) in [("candidate", c, pc), ("baseline", b, pb)] {
        if p == Provenance::VendorReported {
            let ds: Vec<String> = scope_sources(r, s)
                .iter()
                .filter(|x| x.provenance == Provenance::VendorReported)
                .map(|x| format!("{} ({})", x.domain, x.id))
                .collect();
            warnings.push(format!(
                "the {side}'s {s} energy includes vendor-reported figures ({}): effbench cannot inspect how they \
                 are made, so the energy verdict is only as good as the vendor's telemetry",
                ds.join(", ")
            ));
        }
    }
    let label = if pc == est {
        "estimated"
    } else if pc == Provenance::VendorReported || pb == Provenance::VendorReported {
        "vendor-reported"
    } else {
        "measured"
    };
    Ok(ScopePair {
        scope: s,
        label,
        candidate_domains: scope_domains(c, s),
        baseline_domains: scope_domains(b, s),
        warnings,
    })
}

fn estimators(r: &RunResult, s: Scope) -> std::collections::BTreeSet<(String, String)> {
    scope_sources(r, s)
        .iter()
        .filter(|x| x.provenance == Provenance::Estimated)
        .map(|x| (x.kind.clone(), x.detail.get("model").map(|m| m.to_string()).unwrap_or_default()))
        .collect()
}

/// Why `r`'s energy at scope `s` cannot be trusted to tell runs apart: a valid repeat whose
/// scope is unresolved, or a median valid window shorter than half the scope's slowest
/// source's update period, so most of each window's energy is interpolated from readings
/// taken outside it (digits-mlp-train: 0.04 s windows against the CPU estimate's 0.2 s).
/// Longer windows that still fall short of one period keep the meter's warning but are judged.
fn unresolved(r: &RunResult, s: Scope) -> Option<String> {
    let valid: Vec<&Repeat> = r.repeats.iter().filter(|x| crate::validity::is_valid(r, x)).collect();
    for rep in &valid {
        if let Some(why) = repeat_scope(r, rep, s).and_then(|e| e.unresolved) {
            return Some(format!("repeat {} (seed {}): {why}", rep_index(r, rep), rep.seed));
        }
    }
    let period = scope_sources(r, s).iter().map(|x| x.update_period_s).fold(0.0, f64::max);
    let mut windows: Vec<f64> = valid.iter().map(|x| x.wall_s.0).collect();
    if period <= 0.0 || windows.is_empty() {
        return None;
    }
    windows.sort_by(f64::total_cmp);
    let median = windows[windows.len() / 2];
    (median < period / 2.0).then(|| {
        format!(
            "its median window, {median:.3} s, is shorter than half the energy source's update period of \
             {period} s, so energy is not resolved (use a longer workload or a faster source)"
        )
    })
}

/// 1-based position of `rep` in `r.repeats`.
fn rep_index(r: &RunResult, rep: &Repeat) -> usize {
    r.repeats.iter().position(|x| std::ptr::eq(x, rep)).map_or(0, |i| i + 1)
}

/// The energy metric's name and each repeat's value at scope `s`: energy to target for
/// training, energy per unit for inference. `None` where the repeat's scope is unresolved.
pub fn energy_values(r: &RunResult, reps: &[&Repeat], s: Scope) -> (&'static str, Vec<Option<f64>>) {
    let train = r.workload.kind == WorkloadKind::Train;
    let values = reps
        .iter()
        .map(|rep| {
            let e = repeat_scope(r, rep, s)?;
            if train {
                e.total_j.map(|j| j.0)
            } else {
                e.per_unit_j.map(|j| j.0)
            }
        })
        .collect();
    (if train { "energy_j" } else { "energy_per_unit_j" }, values)
}
