//! The ONE counter helper and the ONE power integrator. Every cumulative source (RAPL
//! `energy_uj`, hwmon `energyN_input`, NVML total energy) goes through [`CounterAccumulator`];
//! every power-only source (hwmon `powerN_input`, NVML power, PTDaemon watts, the estimate)
//! goes through [`PowerIntegrator`]. Sensors never compute deltas themselves.
//!
//! Both are plain single-threaded state machines: O(1) per update, no allocation, no clock of
//! their own (the meter passes timestamps), so tests can script them exactly.

use crate::units::{Joules, Seconds, Watts};

/// Something odd in a sequence of readings. The meter turns it into a warning (with the source
/// id) for any window it falls in; the reading that caused it contributes no energy.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CounterAnomaly {
    #[error(
        "counter went back from {previous} to {raw} (wraps at {wrap_at}), more than one wrap \
         between two samples can explain; treated as a counter reset and the energy of that \
         interval is lost (was the driver reloaded or the device reset?)"
    )]
    Backwards { previous: u64, raw: u64, wrap_at: u64 },
    #[error("counter value {raw} is above its wrap point {wrap_at}; reading ignored")]
    AboveWrap { raw: u64, wrap_at: u64 },
    #[error("counter scale {joules_per_unit} J per unit is not a positive number; reading ignored")]
    BadScale { joules_per_unit: f64 },
    #[error("power reading {watts} W is not a finite, non-negative number; reading ignored")]
    BadPower { watts: f64 },
}

/// Turns successive raw readings of a cumulative energy counter into a monotone total in joules.
///
/// - The first reading only sets the baseline (adds 0 J).
/// - `raw >= previous` adds `raw - previous` units.
/// - `raw < previous` with `wrap_at > 0` is a wrap: adds `wrap_at - previous + raw` units, the
///   same convention the kernel's powercap users apply to `max_energy_range_uj`.
/// - A step back that would need the counter to have advanced by more than half its range
///   between two samples is not a plausible wrap (RAPL's ~262 kJ range at the slowest 1 Hz
///   sampling would mean >100 kW): it is rejected as a reset, the baseline moves to the new
///   value and [`CounterAnomaly::Backwards`] is returned. With `wrap_at == 0` (no wrap within
///   u64, e.g. NVML's mJ counter) every step back is such a reset.
///
/// The total never decreases.
#[derive(Clone, Debug, Default)]
pub struct CounterAccumulator {
    previous: Option<u64>,
    total: Joules,
    wraps: u64,
    rejected: u64,
}

impl CounterAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one reading; returns the energy added since the previous accepted reading.
    pub fn update(&mut self, raw: u64, wrap_at: u64, joules_per_unit: f64) -> Result<Joules, CounterAnomaly> {
        if !(joules_per_unit.is_finite() && joules_per_unit > 0.0) {
            return Err(CounterAnomaly::BadScale { joules_per_unit });
        }
        if wrap_at > 0 && raw > wrap_at {
            return Err(CounterAnomaly::AboveWrap { raw, wrap_at });
        }
        let Some(previous) = self.previous.replace(raw) else {
            return Ok(Joules(0.0));
        };
        let units = if raw >= previous {
            raw - previous
        } else if wrap_at > 0 && previous <= wrap_at && (wrap_at - previous) + raw <= wrap_at / 2 {
            self.wraps += 1;
            (wrap_at - previous) + raw
        } else {
            self.rejected += 1;
            return Err(CounterAnomaly::Backwards { previous, raw, wrap_at });
        };
        let delta = Joules(units as f64 * joules_per_unit);
        self.total += delta;
        Ok(delta)
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
        raws.iter().map(|&r| acc.update(r, wrap_at, 1e-6).map(|j| j.0).unwrap_or(-1.0)).collect()
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
        acc.update(500, 1000, 1.0).unwrap();
        acc.update(900, 1000, 1.0).unwrap();
        // 900 -> 100 via a wrap would be 200 units: plausible.
        assert_eq!(acc.update(100, 1000, 1.0), Ok(Joules(200.0)));
        // 100 -> 50 via a wrap would be 950 units, more than half the range: a reset.
        let err = acc.update(50, 1000, 1.0).unwrap_err();
        assert_eq!(err, CounterAnomaly::Backwards { previous: 100, raw: 50, wrap_at: 1000 });
        assert!(err.to_string().contains("reset"));
        // The baseline moved to 50, so the next step counts from there.
        assert_eq!(acc.update(80, 1000, 1.0), Ok(Joules(30.0)));
        assert_eq!(acc.total(), Joules(400.0 + 200.0 + 30.0));
        assert_eq!(acc.rejected(), 1);
    }

    #[test]
    fn counter_without_wrap_treats_any_step_back_as_reset() {
        let mut acc = CounterAccumulator::new();
        acc.update(10, 0, 1e-3).unwrap();
        assert!(matches!(acc.update(9, 0, 1e-3), Err(CounterAnomaly::Backwards { .. })));
        assert_eq!(acc.total(), Joules(0.0));
    }

    #[test]
    fn counter_rejects_bad_values() {
        let mut acc = CounterAccumulator::new();
        assert!(matches!(acc.update(1, 0, 0.0), Err(CounterAnomaly::BadScale { .. })));
        assert!(matches!(acc.update(2000, 1000, 1.0), Err(CounterAnomaly::AboveWrap { .. })));
        // Neither bad reading set a baseline.
        assert_eq!(acc.update(10, 1000, 1.0), Ok(Joules(0.0)));
        assert_eq!(acc.update(15, 1000, 1.0), Ok(Joules(5.0)));
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
