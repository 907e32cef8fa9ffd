//! Power a runner reports for its device (`stats.power`) becomes energy for the runner's
//! domain (e.g. `npu:0`) with provenance `vendor-reported`: effbench cannot inspect how the
//! vendor's number is made. Samples are integrated with the meter's one trapezoid integrator
//! over the window between the `mark begin` and `mark end` acknowledgements, in the runner's
//! own CLOCK_MONOTONIC, with the edges interpolated.

use serde_json::json;

use super::proto::{HelloReply, PowerSample};
use crate::sensor::counter::PowerIntegrator;
use crate::sensor::{Provenance, SourceInfo};
use crate::units::{Joules, Seconds, Watts};

/// Energy between `t0_ns` and `t1_ns`, or `None` when the samples do not cover the window
/// (fewer than one sample before-or-at the start and one at-or-after the end is not enough).
pub fn window_energy(samples: &[PowerSample], t0_ns: u64, t1_ns: u64) -> Option<Joules> {
    let mut s: Vec<PowerSample> = samples.iter().copied().filter(|p| p.power_w.is_finite()).collect();
    s.sort_by_key(|p| p.t_mono_ns);
    if t1_ns <= t0_ns || s.first()?.t_mono_ns > t0_ns || s.last()?.t_mono_ns < t1_ns {
        return None;
    }
    let at = |t: u64| -> f64 {
        let i = s.partition_point(|p| p.t_mono_ns <= t);
        let (a, b) = (s[i.saturating_sub(1)], s[i.min(s.len() - 1)]);
        if b.t_mono_ns == a.t_mono_ns {
            return a.power_w;
        }
        let f = (t - a.t_mono_ns) as f64 / (b.t_mono_ns - a.t_mono_ns) as f64;
        a.power_w + f * (b.power_w - a.power_w)
    };
    let mut points = vec![(t0_ns, at(t0_ns))];
    points.extend(s.iter().filter(|p| p.t_mono_ns > t0_ns && p.t_mono_ns < t1_ns).map(|p| (p.t_mono_ns, p.power_w)));
    points.push((t1_ns, at(t1_ns)));
    let mut integ = PowerIntegrator::new();
    for (t, w) in points {
        integ.update(Seconds((t - t0_ns) as f64 * 1e-9), Watts(w)).ok()?;
    }
    Some(integ.total())
}

/// The energy source a runner's power telemetry makes, as recorded in `energy_sources`.
pub fn source_info(runner: &str, hello: &HelloReply, domain: &str, samples: &[PowerSample]) -> SourceInfo {
    let mut t: Vec<u64> = samples.iter().map(|p| p.t_mono_ns).collect();
    t.sort_unstable();
    let gaps: Vec<f64> = t.windows(2).map(|w| (w[1] - w[0]) as f64 * 1e-9).collect();
    let period = if gaps.is_empty() { 0.0 } else { gaps.iter().sum::<f64>() / gaps.len() as f64 };
    SourceInfo {
        id: format!("runner:{runner}:{domain}"),
        kind: "runner".into(),
        domain: domain.into(),
        provenance: Provenance::VendorReported,
        sample_hz: if period > 0.0 { 1.0 / period } else { 0.0 },
        update_period_s: period,
        detail: json!({
            "runner": hello.runner,
            "vendor": hello.vendor,
            "device": hello.device.name,
            "driver": hello.driver,
            "how": "power samples the runner reported in `stats`, integrated by effbench (trapezoid) between the mark acknowledgements",
            "warning": "vendor power semantics undocumented",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: u64, w: f64) -> PowerSample {
        PowerSample { t_mono_ns: t_ms * 1_000_000, power_w: w }
    }

    #[test]
    fn constant_power_over_a_window_gives_power_times_time() {
        let samples = [s(0, 10.0), s(100, 10.0), s(200, 10.0), s(300, 10.0)];
        let e = window_energy(&samples, 50_000_000, 250_000_000).unwrap();
        assert!((e.0 - 2.0).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn ramp_is_interpolated_at_the_edges() {
        // 0 W at 0 ms rising to 100 W at 100 ms; window 50..100 ms: mean 75 W x 0.05 s.
        let e = window_energy(&[s(0, 0.0), s(100, 100.0)], 50_000_000, 100_000_000).unwrap();
        assert!((e.0 - 3.75).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn samples_not_covering_the_window_give_nothing() {
        assert!(window_energy(&[s(10, 5.0), s(20, 5.0)], 0, 15_000_000).is_none());
        assert!(window_energy(&[], 0, 1).is_none());
    }
}
