//! Nothing self-declared is trusted: each repeat's validity is recomputed from its own numbers
//! (quality against the workload's **registered** target in the metric's direction, samples to
//! target within the cap and consistent with the recorded evaluations, finite positive energy
//! and time, a power the domains can draw), and `compare` and `gate` use the recomputed
//! validity, never the file's `valid` flag. A flag that disagrees with its numbers is an error
//! naming the file and the repeat ([`check_file`], exit 4).
//!
//! Also here, shared by `compare` and `gate`: the fewest repeats a side needs before either
//! decides anything ([`MIN_REPEATS`]).

use std::path::Path;

use effbench_models::WorkloadSpec;

use crate::result::{Repeat, RunResult, WorkloadKind};

/// The fewest valid repeats per side for a verdict or a gate decision. With 3 or fewer the
/// studentized bootstrap's interval is unbounded ([-100%, +inf%] in the hostile probes), so a
/// 100% slowdown "passed"; 5 is also what `baseline record` requires and what MLPerf-style
/// submission checks ask for (issue 10's checker).
pub const MIN_REPEATS: usize = 5;

/// Power above this, per domain, is physically implausible for one node (a counter that jumped
/// or a unit error), never averaged in: 5 kW for a CPU package, GPU or NPU, 1 kW for DRAM,
/// 50 kW for a wall meter (a whole 8-GPU server draws about 10 kW).
pub fn power_ceiling_w(domain: &str) -> f64 {
    match domain {
        "dram" => 1_000.0,
        "system" => 50_000.0,
        _ => 5_000.0,
    }
}

/// Why a result's flag and numbers disagree, naming the file and the repeat.
#[derive(Debug, thiserror::Error)]
#[error("{}: repeat {index} (seed {seed}) {claim}, but {finding}; a result whose flags contradict its numbers is not judged (re-run the workload, or fix what edited the file)", path.display())]
pub struct Contradiction {
    pub path: std::path::PathBuf,
    pub index: usize,
    pub seed: u64,
    pub claim: &'static str,
    pub finding: String,
}

/// Why `rep`'s numbers make it invalid, or `Ok` when they make it valid.
pub fn numbers(result: &RunResult, rep: &Repeat) -> Result<(), String> {
    let w = &result.workload;
    let spec = WorkloadSpec::get(&w.id).map_err(|_| format!("workload {:?} is not one effbench knows", w.id))?;
    if spec.quality_target != w.quality_target || spec.higher_is_better != w.higher_is_better {
        return Err(format!(
            "the file declares the target {} {}, but the workload's registered target is {} {}",
            if w.higher_is_better { ">=" } else { "<=" },
            w.quality_target,
            if spec.higher_is_better { ">=" } else { "<=" },
            spec.quality_target
        ));
    }
    let met = |q: f64| if spec.higher_is_better { q >= spec.quality_target } else { q <= spec.quality_target };
    let q = rep.quality.filter(|q| q.is_finite()).ok_or("its quality is missing or not a number")?;
    if !met(q) {
        return Err(format!("its quality {q} misses the target {}", spec.quality_target));
    }
    figures(rep)?;
    if w.kind == WorkloadKind::Train {
        training(result, spec, rep, &met)?;
    }
    if let Some(reason) = rep.invalid_reason.as_deref().filter(|r| r.starts_with("--require-measured")) {
        // A stricter run-time rule, recomputable from the wall meter's figures.
        if rep.wall_meter.as_ref().is_some_and(|w| w.uncertainty.within_limit != Some(true)) {
            return Err(reason.to_string());
        }
    }
    Ok(())
}

/// Finite, positive time and energy, work done, and a power each domain can draw.
fn figures(rep: &Repeat) -> Result<(), String> {
    let wall = rep.wall_s.0;
    if !(wall.is_finite() && wall > 0.0) {
        return Err(format!("its time is {wall} s"));
    }
    if rep.units_processed == 0 {
        return Err("it processed no work".into());
    }
    let total = rep.energy_j.total.0;
    let resolved = rep.unresolved_energy.is_empty();
    if !(total.is_finite() && (total > 0.0 || !resolved)) {
        return Err(format!("its energy is {total} J"));
    }
    for (what, e) in [("energy", &rep.energy_j), ("dynamic energy", &rep.dynamic_energy_j)] {
        // The total is the wall meter's where there is one (it covers every device), else the
        // sum of the domains: anything else is an edited or broken file.
        let (expect, from) = match e.by_domain.get("system") {
            Some(w) => (w.0, "its system (wall meter) figure"),
            None => (e.by_domain.values().map(|j| j.0).sum::<f64>(), "the sum of its domains"),
        };
        if (e.total.0 - expect).abs() > 1e-9 * e.total.0.abs().max(expect.abs()).max(1e-9) {
            return Err(format!("its {what} total, {} J, is not {from}, {expect} J", e.total.0));
        }
    }
    for (domain, j) in &rep.energy_j.by_domain {
        if !j.0.is_finite() || j.0 < 0.0 {
            return Err(format!("its {domain} energy is {} J", j.0));
        }
        let w = j.0 / wall;
        if w > power_ceiling_w(domain) {
            return Err(format!(
                "its {domain} energy, {} J in {wall} s, is {w:.0} W, above the {:.0} W any such domain draws",
                j.0,
                power_ceiling_w(domain)
            ));
        }
    }
    Ok(())
}

fn training(result: &RunResult, spec: &WorkloadSpec, rep: &Repeat, met: &dyn Fn(f64) -> bool) -> Result<(), String> {
    let params = &result.recipe.params;
    let cap = params["evaluation"]["sample_cap"].as_u64().unwrap_or(spec.sample_cap);
    let batch = params["batch_size"].as_u64().unwrap_or(0);
    let s = rep.samples_to_target.ok_or("it has no samples to target")?;
    if s == 0 || s > cap + batch {
        return Err(format!("its samples to target, {s}, is outside 1..={cap} (the sample cap)"));
    }
    let evals = rep.evaluations.as_deref().unwrap_or(&[]);
    let Some(last) = evals.last() else { return Err("it records no evaluations".into()) };
    if last.samples != s || !met(last.quality) {
        return Err(format!(
            "its last evaluation ({} samples, quality {}) is not where it claims to meet the target ({s} samples)",
            last.samples, last.quality
        ));
    }
    if let Some(early) = evals[..evals.len() - 1].iter().find(|e| met(e.quality)) {
        return Err(format!(
            "an earlier evaluation already met the target at {} samples, so samples to target is not {s}",
            early.samples
        ));
    }
    if evals.windows(2).any(|p| p[1].samples <= p[0].samples) {
        return Err("its evaluations do not come in increasing sample order".into());
    }
    if rep.quality != Some(last.quality) {
        return Err(format!("its quality {:?} is not its last evaluation's {}", rep.quality, last.quality));
    }
    Ok(())
}

/// Whether `rep` is valid by its numbers (the file's flag is not consulted).
pub fn is_valid(result: &RunResult, rep: &Repeat) -> bool {
    numbers(result, rep).is_ok()
}

/// Every repeat's flag, and its recorded energy per scope, against its numbers: an error for
/// the first that disagrees. A workload
/// effbench does not know is left to the caller (compare and gate refuse it as another
/// workload, and none of its repeats is valid by [`numbers`]).
pub fn check_file(result: &RunResult, path: &Path) -> Result<(), Contradiction> {
    if WorkloadSpec::get(&result.workload.id).is_err() {
        return Ok(());
    }
    for (i, rep) in result.repeats.iter().enumerate() {
        if let Some(finding) = crate::scope::recorded_disagreement(result, rep) {
            let claim = "records energy per scope";
            return Err(Contradiction { path: path.to_path_buf(), index: i + 1, seed: rep.seed, claim, finding });
        }
        let found = numbers(result, rep);
        let (claim, finding) = match (&found, rep.valid) {
            (Err(why), true) => ("says it is valid", why.clone()),
            (Ok(()), false) => (
                "says it is invalid",
                format!(
                    "its numbers meet every rule (its reason: {:?})",
                    rep.invalid_reason.as_deref().unwrap_or("none given")
                ),
            ),
            _ => continue,
        };
        return Err(Contradiction { path: path.to_path_buf(), index: i + 1, seed: rep.seed, claim, finding });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
