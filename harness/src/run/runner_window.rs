//! The measured window of a repeat through a runner, for inference and training alike:
//!
//! ```text
//! stats -> mark begin (acked when drained) -> meter mark -> the work -> mark end
//! -> meter mark -> stats
//! ```
//!
//! and what the runner says of itself: its backend description and its own power telemetry,
//! integrated over the window on its clock.

use anyhow::Result;

use super::{wall_begin, RunPlan};
use crate::backend::external::proto::{PowerSample, StatsReply};
use crate::backend::external::{telemetry, RunnerSession};
use crate::meter::{Mark, Meter, Window};
use crate::result::{BackendInfo, Repeat, RunResult};
use crate::units::Joules;

/// A runner session with the power samples its `stats` replies carried.
pub(super) struct Metered {
    pub runner: RunnerSession,
    power: Vec<PowerSample>,
    /// The samples of the last window, for the source's rate.
    last_window_power: Vec<PowerSample>,
}

/// A window opened by [`Metered::open`].
pub(super) struct Opened {
    label: String,
    pub before: StatsReply,
    pub wall_mark: Option<String>,
    t_begin: u64,
    begin: Mark,
}

/// A window closed by [`Metered::close`]: the runner's counters on both sides, effbench's
/// window, and the window on the runner's clock.
pub(super) struct Closed {
    pub before: StatsReply,
    pub after: StatsReply,
    pub window: Window,
    pub wall_mark: Option<String>,
    t: (u64, u64),
}

impl Metered {
    pub fn new(runner: RunnerSession) -> Metered {
        Metered { runner, power: Vec::new(), last_window_power: Vec::new() }
    }

    pub fn stats(&mut self) -> Result<StatsReply> {
        let s = self.runner.stats()?;
        self.power.extend(s.power.iter().copied());
        Ok(s)
    }

    /// `stats`, the wall meter's begin, `mark begin`, then effbench's meter mark.
    pub fn open(&mut self, plan: &RunPlan, id: &str, seed: u64, meter: &Meter) -> Result<Opened> {
        let label = format!("repeat-{seed}");
        let before = self.stats()?;
        crate::fsutil::reset_peak_rss();
        let wall_mark = wall_begin(plan, id, seed)?;
        let t_begin = self.runner.mark(&label, "begin")?;
        Ok(Opened { label, before, wall_mark, t_begin, begin: meter.mark() })
    }

    /// `mark end`, effbench's meter mark (the window, also kept in `windows`), then `stats`.
    pub fn close(&mut self, o: Opened, meter: &Meter, windows: &mut Vec<(String, Mark, Mark)>) -> Result<Closed> {
        let t_end = self.runner.mark(&o.label, "end")?;
        let end = meter.mark();
        let window = meter.window(&o.begin, &end);
        windows.push((o.label, o.begin, end));
        let after = self.stats()?;
        Ok(Closed { before: o.before, after, window, wall_mark: o.wall_mark, t: (o.t_begin, t_end) })
    }

    /// The runner's power over the closed window into the repeat (see [`runner_power`]).
    pub fn power(&mut self, r: &mut Repeat, meter: &Meter, c: &Closed) {
        runner_power(r, &self.runner, &mut self.power, &mut self.last_window_power, meter, c.t);
    }

    /// The backend as the runner described itself, and its power telemetry as an energy source.
    pub fn describe(&self, hook: Option<&str>, result: &mut RunResult) {
        describe(&self.runner, &self.last_window_power, hook, result);
    }
}

/// The backend as the runner described itself (device, vendor, runner, precision, domain), and
/// its power telemetry as an energy source.
fn describe(runner: &RunnerSession, window_power: &[PowerSample], hook: Option<&str>, result: &mut RunResult) {
    let hello = runner.hello();
    result.backend = BackendInfo {
        kind: "external".into(),
        device: match hook {
            None => format!("{} ({}, {})", hello.device.name, hello.vendor, hello.runner),
            Some(h) => format!("{} ({}, {}; TEST MODEL {h})", hello.device.name, hello.vendor, hello.runner),
        },
        precision: runner.precision().to_string(),
        threads: result.backend.threads,
        allocator: result.backend.allocator.clone(),
        domain: Some(runner.domain()),
        division: result.backend.division.clone(),
        runner_config_sha256: Some(runner.config().sha256.clone()),
    };
    let metered = result.energy_sources.iter().any(|s| s.domain == runner.domain() && s.kind != "runner");
    if hello.telemetry.iter().any(|t| t == "power_w") && !metered {
        let info = telemetry::source_info(&runner.config().name, hello, &runner.domain(), window_power);
        result.energy_sources.retain(|s| s.id != info.id);
        result.energy_sources.push(info);
    }
}

/// The runner's own power samples, integrated over the window `t` (its clock, from the two
/// `mark` acknowledgements) into its domain, unless effbench's own sensor meters that domain
/// (then the runner's figure is a cross-check in `meter_warnings`). Samples before the window's
/// end are dropped; those inside it are kept for the source's rate.
fn runner_power(
    r: &mut Repeat,
    runner: &RunnerSession,
    power: &mut Vec<PowerSample>,
    last_window: &mut Vec<PowerSample>,
    meter: &Meter,
    (t_begin, t_end): (u64, u64),
) {
    if !runner.hello().telemetry.iter().any(|t| t == "power_w") {
        return;
    }
    let domain = runner.domain();
    let name = &runner.config().name;
    // Where effbench's own sensor meters the runner's device, that measurement stands and
    // the runner's figure is a cross-check only: never both, never summed.
    let own = meter.sources().into_iter().find(|s| s.domain == domain && s.kind != "runner");
    match telemetry::window_energy(power, t_begin, t_end) {
        Some(j) if own.is_some() => {
            let ours = r.energy_j.by_domain.get(&domain).map_or(f64::NAN, |x| x.0);
            r.meter_warnings.push(format!(
                "runner {name} reported {:.3} J for {domain}; effbench's own {} measured {ours:.3} J, which is \
                 the figure used",
                j.0,
                own.as_ref().map_or("", |s| s.id.as_str())
            ));
        }
        Some(j) => add_domain(r, &domain, j),
        None if own.is_some() => r.meter_warnings.push(format!(
            "runner {name}: its power samples do not cover the window (effbench's own sensor measured {domain})"
        )),
        None => {
            // Incomplete energy is a property of the repeat, not only a warning.
            let reason =
                format!("runner {name}: its power samples do not cover the window; no {domain} energy for this repeat");
            r.meter_warnings.push(reason.clone());
            r.unresolved_energy.push(crate::result::UnresolvedEnergy { domain: domain.clone(), reason });
        }
    }
    *last_window = power.iter().copied().filter(|p| (t_begin..=t_end).contains(&p.t_mono_ns)).collect();
    power.retain(|p| p.t_mono_ns >= t_end);
}

/// Adds a domain's energy to a repeat. A wall meter (`system`) already covers every device, so
/// then the domain is recorded but the total stays the wall meter's.
fn add_domain(r: &mut Repeat, domain: &str, j: Joules) {
    for e in [&mut r.energy_j, &mut r.dynamic_energy_j] {
        e.by_domain.insert(domain.to_string(), j);
        if !e.by_domain.contains_key("system") {
            e.total += j;
        }
    }
    r.avg_power_w = r.energy_j.total / r.wall_s;
    r.energy_per_unit_j = Joules(r.energy_j.total.0 / r.units_processed.max(1) as f64);
}
