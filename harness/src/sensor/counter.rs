//! The ONE counter helper and the ONE power integrator. Every cumulative source (RAPL
//! `energy_uj`, hwmon `energyN_input`, NVML total energy) goes through [`CounterAccumulator`];
//! every power-only source (hwmon `powerN_input`, NVML power, PTDaemon watts, the estimate)
//! goes through [`PowerIntegrator`]. Sensors never compute deltas themselves.
//!
//! Both are plain single-threaded state machines: O(1) per update, no allocation, no clock of
//! their own (the meter passes timestamps), so tests can script them exactly.

use crate::units::{Joules, Seconds, Watts};

/// Something odd in a sequence of readings. The meter records it for any window it falls in
/// and marks that window's energy for the source's domain unresolved; the reading that caused
/// it contributes no energy.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CounterAnomaly {
    #[error(
        "counter went back from {previous} to {raw} (wraps at {wrap_at}), more than one wrap \
         between two samples can explain; treated as a counter reset and the energy of that \
         interval is lost (was the driver reloaded or the device reset?)"
    )]
    Backwards { previous: u64, raw: u64, wrap_at: u64 },
    #[error(
        "counter went back from {previous} to {raw} (wraps at {wrap_at}); read as one wrap that is \
         {joules:.3} J in {seconds:.3} s = {watts:.0} W, above the {ceiling:.0} W this domain can draw: \
         rejected as a counter reset or a bad reading, the energy of that interval is unknown"
    )]
    ImplausibleWrap { previous: u64, raw: u64, wrap_at: u64, joules: f64, seconds: f64, watts: f64, ceiling: f64 },
    #[error(
        "counter went from {previous} to {raw}: {joules:.3} J in {seconds:.3} s = {watts:.0} W, above the \
         {ceiling:.0} W this domain can draw: rejected as a bad reading, the energy of that interval is unknown"
    )]
    ImplausibleStep { previous: u64, raw: u64, joules: f64, seconds: f64, watts: f64, ceiling: f64 },
    #[error("counter value {raw} is above its wrap point {wrap_at}; reading ignored")]
    AboveWrap { raw: u64, wrap_at: u64 },
    #[error("counter scale {joules_per_unit} J per unit is not a positive number; reading ignored")]
    BadScale { joules_per_unit: f64 },
    #[error("power reading {watts} W is not a finite, non-negative number; reading ignored")]
    BadPower { watts: f64 },
}

/// What one accepted counter reading added.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Counted {
    /// Energy since the previous accepted reading, counting the fewest wraps that explain it.
    pub energy: Joules,
    /// A whole extra counter range could also have passed in this interval (the gap is long
    /// enough that `energy` plus one range is still a power the domain can draw), so `energy`
    /// may be short by whole ranges: the meter marks the window's energy unresolved.
    pub may_hide_wrap: bool,
}

/// Turns successive raw readings of a cumulative energy counter into a monotone total in joules.
///
/// - The first reading only sets the baseline (adds 0 J).
/// - `raw >= previous` adds `raw - previous` units.
/// - `raw < previous` with `wrap_at > 0` may be a wrap, adding `wrap_at - previous + raw`
///   units. The kernel's powercap ABI (`Documentation/power/powercap/powercap.rst`:
///   `energy_uj` is the "current energy counter", `max_energy_range_uj` its "range") and
///   `intel_rapl_common.c` (32-bit register, scaled) make `energy_uj` restart from 0 after
///   `max_energy_range_uj`; sensors pass `wrap_at = max + 1`. Whether the step back really is
///   one wrap is decided by power, when the source states a **power ceiling** (what its domain
///   can plausibly draw, [`CounterAccumulator::with_ceiling`]) and the interval is known:
///   - the wrap's energy over the interval is at most the ceiling: it is a wrap, the only
///     physical reading (a step back of 70-90% of the range, sampled fast enough, is counted);
///   - above the ceiling: no wrap explains it (a counter reset or a bad counter, e.g. a jump
///     back by 60% of a 262 kJ range within 0.55 s would be 190 kW): rejected with
///     [`CounterAnomaly::ImplausibleWrap`], the baseline moves to the new value and the
///     interval's energy is unknown, never a huge number.
///
///
///   A step forward that means more than the ceiling is rejected the same way
///   ([`CounterAnomaly::ImplausibleStep`]): a bad counter jumping up is no more energy than
///   one jumping back.
///
///   Without a ceiling or an interval the old rule stands: a step back that would need more
///   than half the range between two samples is rejected ([`CounterAnomaly::Backwards`]).
///   With `wrap_at == 0` (no wrap within u64, e.g. NVML's mJ counter) every step back is a reset.
/// - Every accepted step reports [`Counted::may_hide_wrap`]: with a ceiling, when one more
///   whole range over the interval is still within it (the gap exceeds `range / ceiling`,
///   sensors.md §1.4); without one, when the step is more than half the range.
///
/// The total never decreases.
#[derive(Clone, Debug, Default)]
pub struct CounterAccumulator {
    previous: Option<u64>,
    total: Joules,
    wraps: u64,
    rejected: u64,
    ceiling: Option<Watts>,
    slack: Seconds,
}

impl CounterAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator that judges steps by power: `ceiling` is the most its domain can draw.
    /// Power is judged over the interval plus `slack`: a counter's value lags by up to its
    /// update period and a reading can land just after a late update, so two readings 50 µs
    /// apart may differ by a millisecond's energy or more. The slack only matters for small
    /// steps; the readings this rejects (resets, bad counters) are kilojoules.
    pub fn with_ceiling(ceiling: Option<Watts>, slack: Seconds) -> Self {
        let slack = if slack.0.is_finite() && slack.0 > 0.0 { slack } else { Seconds(0.0) };
        Self { ceiling: ceiling.filter(|w| w.0.is_finite() && w.0 > 0.0), slack, ..Self::default() }
    }

    /// Feeds one reading taken `interval` after the previous accepted one (`None` when the
    /// caller has no clock); returns what it added.
    pub fn update(
        &mut self,
        raw: u64,
        wrap_at: u64,
        joules_per_unit: f64,
        interval: Option<Seconds>,
    ) -> Result<Counted, CounterAnomaly> {
        if !(joules_per_unit.is_finite() && joules_per_unit > 0.0) {
            return Err(CounterAnomaly::BadScale { joules_per_unit });
        }
        if wrap_at > 0 && raw > wrap_at {
            return Err(CounterAnomaly::AboveWrap { raw, wrap_at });
        }
        let Some(previous) = self.previous.replace(raw) else {
            return Ok(Counted { energy: Joules(0.0), may_hide_wrap: false });
        };
        // Power is judged only with a ceiling and a positive interval.
        let timed = match (self.ceiling, interval) {
            (Some(c), Some(dt)) if dt.0 > 0.0 => Some((c.0, dt.0)),
            _ => None,
        };
        // Above the ceiling even over the interval plus the slack (reported: the plain power).
        let slack = self.slack.0;
        let too_much = |joules: f64, c: f64, dt: f64| joules / (dt + slack) > c;
        let range_j = wrap_at as f64 * joules_per_unit;
        let units = if raw >= previous {
            let units = raw - previous;
            let joules = units as f64 * joules_per_unit;
            if let Some((ceiling, seconds)) = timed.filter(|&(c, dt)| too_much(joules, c, dt)) {
                self.rejected += 1;
                let watts = joules / seconds;
                return Err(CounterAnomaly::ImplausibleStep { previous, raw, joules, seconds, watts, ceiling });
            }
            units
        } else if wrap_at > 0 && previous <= wrap_at {
            let units = (wrap_at - previous) + raw;
            let joules = units as f64 * joules_per_unit;
            match timed {
                Some((ceiling, seconds)) if too_much(joules, ceiling, seconds) => {
                    self.rejected += 1;
                    let watts = joules / seconds;
                    return Err(CounterAnomaly::ImplausibleWrap {
                        previous,
                        raw,
                        wrap_at,
                        joules,
                        seconds,
                        watts,
                        ceiling,
                    });
                }
                Some(_) => {}
                None if units > wrap_at / 2 => {
                    self.rejected += 1;
                    return Err(CounterAnomaly::Backwards { previous, raw, wrap_at });
                }
                None => {}
            }
            self.wraps += 1;
            units
        } else {
            self.rejected += 1;
            return Err(CounterAnomaly::Backwards { previous, raw, wrap_at });
        };
        let energy = Joules(units as f64 * joules_per_unit);
        let may_hide_wrap = wrap_at > 0
            && match timed {
                Some((ceiling, seconds)) => (energy.0 + range_j) / seconds <= ceiling,
                None => units > wrap_at / 2,
            };
        self.total += energy;
        Ok(Counted { energy, may_hide_wrap })
    }

    /// Energy accumulated since the first reading.
    pub fn total(&self) -> Joules {
        self.total
    }

    /// How many wraps were handled.
    pub fn wraps(&self) -> u64 {
        self.wraps
    }

    /// How many steps back were rejected as resets.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

/// Integrates power readings over time with the trapezoid rule: between two readings at
/// `t0, t1` with powers `p0, p1`, the energy is `(p0 + p1) / 2 × (t1 - t0)`.
///
/// Timestamps come from the meter's monotonic clock. A reading at the same time as (or before)
/// the previous one adds nothing. A failed read simply leaves a longer interval, bridged by the
/// trapezoid between the readings on either side (the meter warns about the gap).
#[derive(Clone, Debug, Default)]
pub struct PowerIntegrator {
    previous: Option<(Seconds, Watts)>,
    total: Joules,
}

impl PowerIntegrator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one reading taken at `t`; returns the energy added since the previous reading.
    pub fn update(&mut self, t: Seconds, power: Watts) -> Result<Joules, CounterAnomaly> {
        if !(power.0.is_finite() && power.0 >= 0.0) {
            return Err(CounterAnomaly::BadPower { watts: power.0 });
        }
        let delta = match self.previous {
            Some((t0, _)) if t <= t0 => return Ok(Joules(0.0)),
            Some((t0, p0)) => (p0 + power) * 0.5 * (t - t0),
            None => Joules(0.0),
        };
        self.previous = Some((t, power));
        self.total += delta;
        Ok(delta)
    }

    /// Energy accumulated since the first reading.
    pub fn total(&self) -> Joules {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(acc: &mut CounterAccumulator, raws: &[u64], wrap_at: u64) -> Vec<f64> {
        raws.iter().map(|&r| acc.update(r, wrap_at, 1e-6, None).map(|c| c.energy.0).unwrap_or(-1.0)).collect()
    }

    /// The energy of an untimed update (no ceiling judged).
    fn step(acc: &mut CounterAccumulator, raw: u64, wrap_at: u64, per_unit: f64) -> Result<Joules, CounterAnomaly> {
        acc.update(raw, wrap_at, per_unit, None).map(|c| c.energy)
    }

    #[test]
    fn counter_deltas_and_total() {
        let mut acc = CounterAccumulator::new();
        let d = feed(&mut acc, &[1_000_000, 3_000_000, 3_000_000, 7_500_000], 0);
        assert_eq!(d, vec![0.0, 2.0, 0.0, 4.5]);
        assert!((acc.total().0 - 6.5).abs() < 1e-12);
        assert_eq!(acc.wraps(), 0);
    }

    #[test]
    fn counter_wraps_at_max_range() {
        // RAPL-style: counts 0..=wrap_at then restarts at 0.
        let wrap = 262_143_328_850;
        let mut acc = CounterAccumulator::new();
        let d = feed(&mut acc, &[wrap - 2_000_000, wrap - 500_000, 1_500_000], wrap);
        assert!((d[1] - 1.5).abs() < 1e-9);
        assert!((d[2] - 2.0).abs() < 1e-9, "wrap delta {}", d[2]);
        assert!((acc.total().0 - 3.5).abs() < 1e-9);
        assert_eq!(acc.wraps(), 1);
        assert_eq!(acc.rejected(), 0);
    }

    #[test]
    fn counter_rejects_implausible_step_back_and_rebaselines() {
        let mut acc = CounterAccumulator::new();
        step(&mut acc, 500, 1000, 1.0).unwrap();
        step(&mut acc, 900, 1000, 1.0).unwrap();
        // 900 -> 100 via a wrap would be 200 units: plausible.
        assert_eq!(step(&mut acc, 100, 1000, 1.0), Ok(Joules(200.0)));
        // 100 -> 50 via a wrap would be 950 units, more than half the range: a reset.
        let err = step(&mut acc, 50, 1000, 1.0).unwrap_err();
        assert_eq!(err, CounterAnomaly::Backwards { previous: 100, raw: 50, wrap_at: 1000 });
        assert!(err.to_string().contains("reset"));
        // The baseline moved to 50, so the next step counts from there.
        assert_eq!(step(&mut acc, 80, 1000, 1.0), Ok(Joules(30.0)));
        assert_eq!(acc.total(), Joules(400.0 + 200.0 + 30.0));
        assert_eq!(acc.rejected(), 1);
    }

    #[test]
    fn counter_without_wrap_treats_any_step_back_as_reset() {
        let mut acc = CounterAccumulator::new();
        step(&mut acc, 10, 0, 1e-3).unwrap();
        assert!(matches!(step(&mut acc, 9, 0, 1e-3), Err(CounterAnomaly::Backwards { .. })));
        assert_eq!(acc.total(), Joules(0.0));
    }

    #[test]
    fn counter_rejects_bad_values() {
        let mut acc = CounterAccumulator::new();
        assert!(matches!(step(&mut acc, 1, 0, 0.0), Err(CounterAnomaly::BadScale { .. })));
        assert!(matches!(step(&mut acc, 2000, 1000, 1.0), Err(CounterAnomaly::AboveWrap { .. })));
        // Neither bad reading set a baseline.
        assert_eq!(step(&mut acc, 10, 1000, 1.0), Ok(Joules(0.0)));
        assert_eq!(step(&mut acc, 15, 1000, 1.0), Ok(Joules(5.0)));
    }

    /// The shape of a peer project's RAPL wraparound tests (zeusd's `multiple_wraparounds`:
    /// a small `max_energy_range_uj` and consecutive readings that each cross the wrap point,
    /// nothing sampled in between), made harder: every step is a wrap of 70-90% of the range,
    /// the last one landing on exactly 0. Sampled every 10 ms under a 100 W ceiling, each is
    /// the only physical reading (at most 90 W; one more range would be 170-190 W), so all
    /// count. The half-range rule alone rejected every one of them (about 0 J).
    #[test]
    fn wraps_of_70_to_90_percent_sampled_fast_enough_are_counted() {
        let wrap = 1_000_000; // µJ: a 1 J range
        let raws = [900_000, 700_000, 450_000, 300_000, 200_000, 0];
        let mut acc = CounterAccumulator::with_ceiling(Some(Watts(100.0)), Seconds(0.0));
        let dt = Some(Seconds(0.010));
        let mut steps = Vec::new();
        for &r in &raws {
            let c = acc.update(r, wrap, 1e-6, dt).unwrap();
            assert!(!c.may_hide_wrap, "{r}: {c:?}");
            steps.push((c.energy.0 * 1e6).round() as u64);
        }
        assert_eq!(steps, vec![0, 800_000, 750_000, 850_000, 900_000, 800_000]);
        assert!((acc.total().0 - 4.1).abs() < 1e-9, "{}", acc.total().0);
        assert_eq!((acc.wraps(), acc.rejected()), (5, 0));
    }

    /// Issue 11: a bad counter that jumps back by 60% of RAPL's 262 kJ range 0.55 s after the
    /// previous reading. As one wrap that is ~105 kJ, ~190 kW: no package draws that, so it is
    /// a rejected reading, not energy.
    #[test]
    fn jump_back_implying_more_than_the_ceiling_is_rejected_not_counted() {
        let max = 262_143_328_850u64;
        let wrap = max + 1;
        let mut acc = CounterAccumulator::with_ceiling(Some(Watts(2000.0)), Seconds(0.1));
        let (previous, raw) = (max / 10 * 8, max / 10 * 2);
        acc.update(previous, wrap, 1e-6, None).unwrap();
        let err = acc.update(raw, wrap, 1e-6, Some(Seconds(0.55))).unwrap_err();
        let CounterAnomaly::ImplausibleWrap { joules, watts, ceiling, .. } = err.clone() else { panic!("{err:?}") };
        assert!((joules - (wrap - previous + raw) as f64 * 1e-6).abs() < 1e-6 && joules > 104_000.0, "{joules}");
        assert!(watts > 190_000.0 && ceiling == 2000.0, "{watts} {ceiling}");
        assert!(err.to_string().contains("rejected"), "{err}");
        assert_eq!((acc.total(), acc.wraps(), acc.rejected()), (Joules(0.0), 0, 1));
        // The baseline moved to the new value.
        let next = acc.update(raw + 1_000_000, wrap, 1e-6, Some(Seconds(0.1))).unwrap();
        assert!((next.energy.0 - 1.0).abs() < 1e-12, "{next:?}");
    }

    /// The same bad counter jumping forward by 60% of the range is no energy either.
    #[test]
    fn jump_forward_implying_more_than_the_ceiling_is_rejected() {
        let wrap = 262_143_328_851u64;
        let mut acc = CounterAccumulator::with_ceiling(Some(Watts(2000.0)), Seconds(0.1));
        acc.update(wrap / 10 * 2, wrap, 1e-6, None).unwrap();
        let err = acc.update(wrap / 10 * 8, wrap, 1e-6, Some(Seconds(0.55))).unwrap_err();
        assert!(matches!(err, CounterAnomaly::ImplausibleStep { watts, .. } if watts > 280_000.0), "{err:?}");
        assert_eq!((acc.total(), acc.rejected()), (Joules(0.0), 1));
        // Without a ceiling (hwmon, NVML) a forward step is taken as it is.
        let mut plain = CounterAccumulator::new();
        plain.update(0, wrap, 1e-6, None).unwrap();
        assert!(plain.update(wrap / 2, wrap, 1e-6, Some(Seconds(0.55))).is_ok());
    }

    /// sensors.md §1.4: a gap longer than `range / ceiling` could hide a whole wrap.
    #[test]
    fn gap_long_enough_for_another_range_may_hide_a_wrap() {
        let mut acc = CounterAccumulator::with_ceiling(Some(Watts(100.0)), Seconds(0.0));
        acc.update(100_000, 1_000_000, 1e-6, None).unwrap();
        // 0.5 J in 20 ms (25 W); 1.5 J would be 75 W, also possible.
        let c = acc.update(600_000, 1_000_000, 1e-6, Some(Seconds(0.020))).unwrap();
        assert!(c.may_hide_wrap && (c.energy.0 - 0.5).abs() < 1e-12, "{c:?}");
        // The same step in 10 ms: 1.5 J would be 150 W, impossible.
        let c = acc.update(100_000, 1_000_000, 1e-6, Some(Seconds(0.010))).unwrap();
        assert!(!c.may_hide_wrap, "{c:?}");
    }

    #[test]
    fn trapezoid_integrates_power() {
        let mut int = PowerIntegrator::new();
        assert_eq!(int.update(Seconds(0.0), Watts(10.0)), Ok(Joules(0.0)));
        assert_eq!(int.update(Seconds(1.0), Watts(20.0)), Ok(Joules(15.0)));
        assert_eq!(int.update(Seconds(3.0), Watts(20.0)), Ok(Joules(40.0)));
        // A reading at the same instant adds nothing and does not move the baseline.
        assert_eq!(int.update(Seconds(3.0), Watts(99.0)), Ok(Joules(0.0)));
        assert_eq!(int.update(Seconds(3.5), Watts(0.0)), Ok(Joules(5.0)));
        assert_eq!(int.total(), Joules(60.0));
    }

    #[test]
    fn trapezoid_rejects_nan_and_negative_power() {
        let mut int = PowerIntegrator::new();
        int.update(Seconds(0.0), Watts(10.0)).unwrap();
        assert!(int.update(Seconds(1.0), Watts(f64::NAN)).is_err());
        assert!(int.update(Seconds(1.0), Watts(-1.0)).is_err());
        assert_eq!(int.update(Seconds(2.0), Watts(10.0)), Ok(Joules(20.0)));
    }
}
