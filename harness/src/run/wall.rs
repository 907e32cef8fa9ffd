//! The wall meter's part of a run (`--meter ptd://`): each measured window is also a window in
//! the analyzer's log, and the repeat's `system` energy is the one computed from the analyzer's
//! own samples (see `sensor::ptd::window`), never the meter's integral of the live readings.
//!
//! What effbench chose for windows too short for the analyzer (issue 9): a training repeat is
//! run again, same seed, back to back inside one analyzer window until the window holds at
//! least `--meter-min-samples` sample periods (plus two for the edges), and every figure of
//! the repeat is per run; inference already repeats passes until its window is long enough.
//! This is MLPerf Power's rule (measure over a run long enough for the analyzer) applied per
//! repeat, so each repeat still gives one point for the intervals. A window that still does
//! not resolve (samples lost, a count that disagrees) has its `system` energy marked
//! unresolved, and `compare` and `gate` do not judge it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::RunPlan;
use crate::report::progress::Progress;
use crate::result::{Repeat, UnresolvedEnergy, WallMeterRepeat, WallUncertainty};
use crate::sensor::ptd::{make_mark, PtdWindowReport, Uncertainty};
use crate::units::{Joules, Seconds, Watts};

/// The wall meter's domain.
pub(super) const WALL: &str = "system";

/// The shortest window the wall meter resolves (zero without one).
pub(super) fn min_window(plan: &RunPlan) -> Duration {
    plan.wall.as_ref().map_or(Duration::ZERO, |w| w.min_window())
}

/// Opens a window on the wall meter (if any) just before the meter's own edge.
pub(super) fn wall_begin(plan: &RunPlan, id: &str, seed: u64) -> Result<Option<String>> {
    begin(plan, &format!("{id}_r{seed}"))
}

fn begin(plan: &RunPlan, label: &str) -> Result<Option<String>> {
    let Some(w) = &plan.wall else { return Ok(None) };
    let mark = make_mark(&format!("{label}_{}", chrono::Utc::now().format("%H%M%S%3f")));
    w.begin_window(&mark).with_context(|| format!("wall meter: starting window {mark}"))?;
    Ok(Some(mark))
}

/// Closes the wall meter's window, appends its samples to `<workload>.wall.csv`, and puts the
/// analyzer's energy (per pass) in the repeat's `system` domain, or marks it unresolved.
pub(super) fn wall_end(
    plan: &RunPlan,
    id: &str,
    mark: Option<String>,
    r: &mut Repeat,
    idle_power: &BTreeMap<String, Watts>,
) -> Result<()> {
    let (Some(w), Some(mark)) = (&plan.wall, mark) else { return Ok(()) };
    let report = w.end_window(&mark).with_context(|| format!("wall meter: closing window {mark}"))?;
    let csv = plan.out_dir.join(format!("{id}.wall.csv"));
    // The first repeat's window starts the file afresh (an earlier run's, kept until now under
    // --force, is replaced); later ones append.
    append_samples(&csv, &report, r.seed == 0).with_context(|| format!("writing {}", csv.display()))?;
    let passes = r.passes.unwrap_or(1);
    let wall = wall_repeat(&report, passes, w.max_uncertainty_pct());
    r.meter_warnings.extend(report.warnings.iter().map(|x| format!("wall meter: {x}")));
    judge_uncertainty(plan, &wall.uncertainty, r);
    match wall.energy_j {
        Some(e) => {
            // The log is the wall energy's only source: a gap in the live readings the meter
            // integrated does not make it unresolved.
            r.unresolved_energy.retain(|u| u.domain != WALL);
            r.energy_j.by_domain.insert(WALL.into(), e);
            let idle = idle_power.get(WALL).map_or(Joules(0.0), |p| *p * r.wall_s);
            r.dynamic_energy_j.by_domain.insert(WALL.into(), e - idle);
        }
        None => {
            r.energy_j.by_domain.remove(WALL);
            r.dynamic_energy_j.by_domain.remove(WALL);
            let reason = wall.unresolved.clone().unwrap_or_default();
            r.meter_warnings.push(format!("wall meter: energy unresolved: {reason}"));
            r.unresolved_energy.push(UnresolvedEnergy { domain: WALL.into(), reason });
        }
    }
    retotal(r);
    r.wall_meter = Some(wall);
    Ok(())
}

fn wall_repeat(report: &PtdWindowReport, passes: u32, limit_pct: f64) -> WallMeterRepeat {
    let per_pass = |j: Joules| Joules(j.0 / f64::from(passes));
    let (avg_pct, max_pct) = match &report.uncertainty {
        Uncertainty::Known { avg_pct, max_pct, .. } => (Some(*avg_pct), Some(*max_pct)),
        Uncertainty::Unknown { stats } => (stats.avg_pct(), stats.max_pct()),
        Uncertainty::Unavailable { .. } => (None, None),
    };
    WallMeterRepeat {
        mark: report.mark.clone(),
        energy_j: report.energy.map(per_pass),
        window_energy_j: report.energy,
        unresolved: report.unresolved.clone(),
        samples: report.samples.len() as u64,
        lost_lines: report.lost_lines as u64,
        sample_period_s: report.period_s,
        window_s: report.window_s,
        passes,
        mean_power_w: report.mean_w.map(Watts),
        daemon_avg_w: report.daemon_avg_w,
        uncertainty: WallUncertainty {
            status: report.uncertainty.status().into(),
            avg_pct,
            max_pct,
            limit_pct,
            within_limit: report.uncertainty.within(limit_pct),
            reply: report.uncertainty_reply.clone(),
        },
        max_volts: report.max_volts,
        max_amps: report.max_amps,
        method: "mean of the analyzer's samples between Go and Stop x the window's length, divided by passes; \
                 samples in <workload>.wall.csv under this mark"
            .into(),
    }
}

/// An uncertainty above the limit is always flagged; under `--require-measured` a window whose
/// uncertainty is not known to be within it makes the repeat invalid.
fn judge_uncertainty(plan: &RunPlan, u: &WallUncertainty, r: &mut Repeat) {
    let shown = u.max_pct.map_or("unknown".to_string(), |p| format!("{p:.3}%"));
    if u.within_limit == Some(false) {
        r.meter_warnings.push(format!(
            "wall meter: uncertainty {shown} (worst sample) is above the {:.2}% limit; fix the analyzer's ranges \
             (--meter-ranging) before trusting this window",
            u.limit_pct
        ));
    }
    if plan.require_measured && u.within_limit != Some(true) && r.valid {
        r.valid = false;
        r.invalid_reason = Some(format!(
            "--require-measured: the wall meter's uncertainty ({}, worst sample {shown}) is not known to be within \
             --max-meter-uncertainty {:.2}%",
            u.status, u.limit_pct
        ));
    }
}

/// The meter's incomplete domains ([`crate::meter::Window::unresolved`]: a failed or rejected
/// reading, a zone missing, a gap that may hide a wrap) leave the repeat's energy and are
/// recorded as unresolved, never reported as the smaller number the meter could count.
pub(super) fn leave_out_unresolved(r: &mut Repeat, unresolved: &BTreeMap<String, String>) {
    if unresolved.is_empty() {
        return;
    }
    for (domain, reason) in unresolved {
        r.energy_j.by_domain.remove(domain);
        r.dynamic_energy_j.by_domain.remove(domain);
        r.unresolved_energy.push(UnresolvedEnergy { domain: domain.clone(), reason: reason.clone() });
    }
    retotal(r);
}

/// Totals after a domain changed: the wall meter covers every device, so when it is present
/// the total is its figure alone.
pub(super) fn retotal(r: &mut Repeat) {
    for e in [&mut r.energy_j, &mut r.dynamic_energy_j] {
        e.total = match e.by_domain.get(WALL) {
            Some(w) => *w,
            None => e.by_domain.values().copied().sum(),
        };
    }
    r.avg_power_w = r.energy_j.total / r.wall_s;
    r.energy_per_unit_j = Joules(r.energy_j.total.0 / r.units_processed.max(1) as f64);
}

/// The idle window's wall power, from the analyzer's samples (the mean of at least 3).
pub(super) fn idle_begin(plan: &RunPlan) -> Result<Option<String>> {
    begin(plan, "idle")
}

/// Closes the idle window and replaces the idle power of the `system` domain with the mean of
/// the analyzer's samples; without 3 samples the wall meter has no idle power (no dynamic
/// energy), said on the progress output.
pub(super) fn idle_end(
    plan: &RunPlan,
    mark: Option<String>,
    idle_power: &mut BTreeMap<String, Watts>,
    progress: &mut dyn Progress,
) -> Result<()> {
    let (Some(w), Some(mark)) = (&plan.wall, mark) else { return Ok(()) };
    let report = w.end_window(&mark).with_context(|| format!("wall meter: closing window {mark}"))?;
    match report.mean_w.filter(|_| report.samples.len() >= 3) {
        Some(p) => {
            idle_power.insert(WALL.into(), Watts(p));
        }
        None => {
            idle_power.remove(WALL);
            progress.note(&format!(
                "wall meter: the idle window logged {} analyzer sample(s), fewer than 3: no idle wall power \
                 (lengthen --idle-secs for dynamic wall energy)",
                report.samples.len()
            ));
        }
    }
    Ok(())
}

/// MLPerf's ranging pass: ranges to Auto, one analyzer window over `work` run back to back for
/// at least 5 sample periods (unrecorded), then fixed ranges from the highest volts and amps
/// it saw. The ranges found at connect are restored at the end of the run.
pub(super) fn ranging(
    plan: &RunPlan,
    id: &str,
    progress: &mut dyn Progress,
    work: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let Some(w) = &plan.wall else { return Ok(()) };
    w.auto_ranges().context("wall meter: setting auto ranges for the ranging pass")?;
    let mark = begin(plan, &format!("{id}_ranging"))?.expect("a wall meter is present");
    let t0 = Instant::now();
    let long_enough = w.period() * 5;
    while {
        work()?;
        t0.elapsed() < long_enough
    } {}
    let report = w.end_window(&mark).with_context(|| format!("wall meter: closing window {mark}"))?;
    let (v, a) = w.fix_ranges(&report).context("wall meter: setting fixed ranges after the ranging pass")?;
    progress.note(&format!("wall meter: ranging pass for {id}: ranges set to {v} V and {a:.4} A"));
    Ok(())
}

fn append_samples(path: &Path, report: &PtdWindowReport, fresh: bool) -> std::io::Result<()> {
    let new = fresh || !path.exists();
    let mut out = String::new();
    if new {
        out.push_str("mark,time,watts,volts,amps,pf,channel_watts\n");
    }
    for s in &report.samples {
        let ch: Vec<String> = s.channels.iter().map(|c| c.watts.to_string()).collect();
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            report.mark,
            s.time,
            s.watts,
            s.volts,
            s.amps,
            s.pf,
            ch.join(";")
        ));
    }
    if new {
        return crate::fsutil::write_atomic(path, out.as_bytes());
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(out.as_bytes())?;
    f.sync_data()
}

/// Seconds divided over passes.
pub(super) fn per_pass(s: Option<Seconds>, passes: u32) -> Option<Seconds> {
    s.map(|s| Seconds(s.0 / f64::from(passes)))
}
