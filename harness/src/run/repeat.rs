//! One repeat's record from its meter window and its work's outcome: energy (total and above
//! idle, a wall meter's figure as the total), rates, and validity against the workload's
//! quality target.

use std::collections::BTreeMap;

use effbench_models::train::TrainOutcome;
use effbench_models::WorkloadSpec;

use super::wall;
use crate::fsutil;
use crate::meter::Window;
use crate::result::{EnergyBreakdown, Evaluation, Repeat};
use crate::units::{Bytes, Joules, Watts};

/// Total and dynamic energy of a window. A wall meter (domain `system`) covers every other
/// domain, so when one is present the total is the wall meter's alone and the component
/// domains stay in `by_domain` for information.
fn energy(window: &Window, idle_power: &BTreeMap<String, Watts>) -> (EnergyBreakdown, EnergyBreakdown) {
    let total = wall_aware(EnergyBreakdown::from_domains(window.by_domain.clone()));
    let dynamic = window
        .by_domain
        .iter()
        .map(|(d, j)| {
            let idle = idle_power.get(d).copied().unwrap_or(Watts(0.0)) * window.duration;
            (d.clone(), *j - idle)
        })
        .collect();
    (total, wall_aware(EnergyBreakdown::from_domains(dynamic)))
}

fn wall_aware(mut e: EnergyBreakdown) -> EnergyBreakdown {
    if let Some(wall) = e.by_domain.get("system") {
        e.total = *wall;
    }
    e
}

#[allow(clippy::too_many_arguments)]
fn base_repeat(
    seed: u64,
    window: &Window,
    idle_power: &BTreeMap<String, Watts>,
    units: u64,
    quality: Option<f64>,
    flops_per_unit: f64,
    peak: Option<f64>,
) -> Repeat {
    let (energy_j, dynamic_energy_j) = energy(window, idle_power);
    let wall = window.duration;
    let achieved = flops_per_unit * units as f64 / wall.0;
    let mut r = Repeat {
        seed,
        valid: true,
        invalid_reason: None,
        wall_s: wall,
        avg_power_w: energy_j.total / wall,
        energy_per_unit_j: Joules(energy_j.total.0 / units.max(1) as f64),
        energy_j,
        dynamic_energy_j,
        energy_scopes: BTreeMap::new(),
        units_processed: units,
        quality,
        throughput_per_s: units as f64 / wall.0,
        cpu_s: None,
        peak_rss_bytes: fsutil::peak_rss_bytes().map(Bytes),
        achieved_flops_per_s: Some(achieved),
        fraction_of_peak: peak.map(|p| achieved / p),
        meter_warnings: window.warnings.clone(),
        meter_busy_s: Some(window.sampler_busy),
        device_state: window.device_state.clone(),
        wall_meter: None,
        unresolved_energy: Vec::new(),
        passes: None,
        samples_to_target: None,
        bytes_to_target: None,
        unique_samples: None,
        evaluations: None,
        batch_size: None,
        bytes_per_unit: None,
        runner: None,
        runner_train: None,
    };
    wall::leave_out_unresolved(&mut r, &window.unresolved);
    r
}

pub(super) fn train_repeat(
    spec: &WorkloadSpec,
    seed: u64,
    out: &TrainOutcome,
    window: &Window,
    idle_power: &BTreeMap<String, Watts>,
    flops_per_unit: f64,
    peak: Option<f64>,
) -> Repeat {
    let quality = out.quality.is_finite().then_some(out.quality);
    let units = out.samples_processed * spec.units_per_sample;
    let mut r = base_repeat(seed, window, idle_power, units, quality, flops_per_unit, peak);
    r.samples_to_target = out.samples_to_target;
    r.bytes_to_target = out.bytes_to_target.map(Bytes);
    r.unique_samples = Some(out.unique_samples);
    r.evaluations =
        Some(out.evaluations.iter().map(|e| Evaluation { samples: e.samples, quality: e.quality }).collect());
    if !out.reached {
        r.valid = false;
        r.invalid_reason = Some(if out.diverged {
            format!("training diverged (loss not finite) after {} samples", out.samples_processed)
        } else {
            format!(
                "quality target {} {} not reached within the sample cap of {} samples (last: {})",
                if spec.higher_is_better { ">=" } else { "<=" },
                spec.quality_target,
                out.samples_processed,
                quality.map_or("none".into(), |q| format!("{q:.4}"))
            )
        });
    }
    r
}

pub(super) fn infer_repeat(
    spec: &WorkloadSpec,
    seed: u64,
    passes: &[effbench_models::infer::PassOutcome],
    window: &Window,
    idle_power: &BTreeMap<String, Watts>,
    flops_per_unit: f64,
    peak: Option<f64>,
) -> Repeat {
    let units: u64 = passes.iter().map(|p| p.queries).sum();
    // The worst pass decides: every pass's answers must meet the target.
    let worst = passes
        .iter()
        .map(|p| p.quality)
        .reduce(|a, b| if spec.higher_is_better { a.min(b) } else { a.max(b) })
        .filter(|q| q.is_finite());
    let mut r = base_repeat(seed, window, idle_power, units, worst, flops_per_unit, peak);
    r.batch_size = Some(spec.batch as u64);
    r.bytes_per_unit = passes.first().map(|p| Bytes(p.bytes_per_query));
    let met =
        worst.is_some_and(|q| if spec.higher_is_better { q >= spec.quality_target } else { q <= spec.quality_target });
    if !met {
        r.valid = false;
        r.invalid_reason = Some(format!(
            "answers' quality {} misses the target {}",
            worst.map_or("NaN".into(), |q| format!("{q:.4}")),
            spec.quality_target
        ));
    }
    r
}
