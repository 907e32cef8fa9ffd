//! criterion integration: joules per iteration as a criterion [`Measurement`], so any criterion
//! bench can report energy instead of time (behind the `criterion` feature).
//!
//! ```ignore
//! use criterion::{criterion_group, criterion_main, Criterion};
//! use effbench::bench::EnergyMeasurement;
//!
//! fn energy() -> Criterion<EnergyMeasurement> {
//!     Criterion::default().with_measurement(EnergyMeasurement::discover().expect("meter"))
//! }
//! criterion_group! { name = benches; config = energy(); targets = my_bench }
//! criterion_main!(benches);
//! ```
//!
//! Each measurement is one meter window (two synchronous marks, ~0.2 µs each), so criterion's
//! batches of iterations are metered exactly; the estimate's and RAPL's update periods (0.2 s,
//! ~1 ms) still bound how finely energy can be resolved, so prefer `measurement_time` of a
//! few seconds. Whether the joules are measured or estimated is `provenance()`; print it.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

use crate::meter::{Mark, Meter, MeterError, DEFAULT_SAMPLE_HZ};
use crate::sensor::{self, Provenance, Sensor};

pub struct EnergyMeasurement {
    meter: Meter,
}

impl EnergyMeasurement {
    pub fn new(sensors: Vec<Box<dyn Sensor>>, sample_hz: f64) -> Result<EnergyMeasurement, MeterError> {
        Ok(EnergyMeasurement { meter: Meter::start(sensors, sample_hz)? })
    }

    /// The sources `effbench run` would use on this machine for the CPU.
    pub fn discover() -> Result<EnergyMeasurement, MeterError> {
        let opts = sensor::discover::DiscoverOptions::for_domains(&["cpu"]);
        let mut candidates = sensor::discover::discover(&opts);
        EnergyMeasurement::new(sensor::discover::take_sensors(&mut candidates, &opts), DEFAULT_SAMPLE_HZ)
    }

    /// `estimated` if any source is an estimate, else `measured` (or `vendor-reported`).
    pub fn provenance(&self) -> Provenance {
        let s = self.meter.sources();
        if s.iter().any(|x| x.provenance == Provenance::Estimated) {
            Provenance::Estimated
        } else if s.iter().any(|x| x.provenance == Provenance::VendorReported) {
            Provenance::VendorReported
        } else {
            Provenance::Measured
        }
    }
}

impl Measurement for EnergyMeasurement {
    type Intermediate = Mark;
    /// Joules.
    type Value = f64;

    fn start(&self) -> Mark {
        self.meter.mark()
    }
    fn end(&self, begin: Mark) -> f64 {
        let end = self.meter.mark();
        self.meter.window(&begin, &end).total.0
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &JoulesFormatter
    }
}

/// Formats joules with an SI prefix chosen from the typical value.
pub struct JoulesFormatter;

fn scale(typical: f64) -> (f64, &'static str) {
    match typical.abs() {
        t if t >= 1.0 => (1.0, "J"),
        t if t >= 1e-3 => (1e3, "mJ"),
        t if t >= 1e-6 => (1e6, "µJ"),
        _ => (1e9, "nJ"),
    }
}

impl ValueFormatter for JoulesFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = scale(typical);
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, _typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        // work per joule
        let (work, unit) = match throughput {
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => (*b as f64, "B/J"),
            Throughput::Elements(e) => (*e as f64, "elem/J"),
            Throughput::Bits(b) => (*b as f64, "bit/J"),
            _ => (1.0, "iter/J"),
        };
        values.iter_mut().for_each(|v| *v = work / *v);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "J"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::fake::FakePower;
    use crate::units::Watts;

    #[test]
    fn a_window_of_constant_power_gives_its_joules() {
        let m = EnergyMeasurement::new(vec![Box::new(FakePower::new("cpu", Watts(20.0)))], 100.0).unwrap();
        let begin = m.start();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let j = m.end(begin);
        assert!((1.9..2.6).contains(&j), "{j} J for 20 W over ~0.1 s");
        assert_eq!(m.provenance(), Provenance::Measured);
        let mut v = [0.002, 0.003];
        assert_eq!(JoulesFormatter.scale_values(0.002, &mut v), "mJ");
        assert_eq!(v, [2.0, 3.0]);
    }
}
