//! Fake sensors for deterministic tests, selectable end to end through a hidden CLI flag (as
//! hyperfine's mock executor is). They never touch hardware.

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::json;

use super::{Provenance, Reading, Sensor, SensorError, SourceInfo};
use crate::units::Watts;

/// Constant power for one domain, labelled `measured` so end-to-end tests exercise the
/// measured-energy paths. Kind `fake`, id `fake:<domain>`. Cost per read: nothing.
#[derive(Clone, Debug)]
pub struct FakePower {
    pub domain: String,
    pub watts: Watts,
}

impl FakePower {
    pub fn new(domain: &str, watts: Watts) -> FakePower {
        FakePower { domain: domain.to_string(), watts }
    }
}

impl Sensor for FakePower {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            id: format!("fake:{}", self.domain),
            kind: "fake".to_string(),
            domain: self.domain.clone(),
            provenance: Provenance::Measured,
            sample_hz: 0.0,
            update_period_s: 0.0,
            detail: json!({ "watts": self.watts.0, "note": "constant fake power for tests" }),
        }
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        Ok(Reading::Power(self.watts))
    }
}

/// A cumulative counter driven by the real clock: `raw = (elapsed × watts / joules_per_unit)
/// mod wrap_at`, i.e. what a RAPL-like counter would show under constant power. With a small
/// `wrap_at` it wraps within a test, exercising the meter's wrap handling with a running
/// sampler thread. Kind `fake-counter`, id `fake-counter:<domain>`.
#[derive(Clone, Debug)]
pub struct FakeCounter {
    pub domain: String,
    pub watts: Watts,
    pub wrap_at: u64,
    pub joules_per_unit: f64,
    /// Added to every raw value, so the counter can start near its wrap point.
    pub offset: u64,
    start: Instant,
}

impl FakeCounter {
    pub fn new(domain: &str, watts: Watts, wrap_at: u64, joules_per_unit: f64) -> FakeCounter {
        FakeCounter { domain: domain.to_string(), watts, wrap_at, joules_per_unit, offset: 0, start: Instant::now() }
    }

    /// Starts the counter at `offset` units.
    pub fn with_offset(mut self, offset: u64) -> FakeCounter {
        self.offset = offset;
        self
    }
}

impl Sensor for FakeCounter {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            id: format!("fake-counter:{}", self.domain),
            kind: "fake-counter".to_string(),
            domain: self.domain.clone(),
            provenance: Provenance::Measured,
            sample_hz: 0.0,
            update_period_s: 0.0,
            detail: json!({ "watts": self.watts.0, "wrap_at": self.wrap_at }),
        }
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        let units = self.start.elapsed().as_secs_f64() * self.watts.0 / self.joules_per_unit;
        let mut raw = self.offset.saturating_add(units as u64);
        if self.wrap_at > 0 {
            // The counter shows 0..=wrap_at; one past wrap_at is 0 again.
            raw %= self.wrap_at + 1;
        }
        Ok(Reading::Counter { raw, wrap_at: self.wrap_at, joules_per_unit: self.joules_per_unit })
    }
}

/// One scripted read result.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Read(Reading),
    Fail(String),
}

/// Plays back a script of readings and failures, one per `read`; once the script is used up
/// it repeats the last step forever (so `[Read(..), Fail(..)]` is a sensor that works at
/// start-up and then breaks). Kind `scripted`.
#[derive(Clone, Debug)]
pub struct ScriptedSensor {
    pub id: String,
    pub domain: String,
    pub provenance: Provenance,
    steps: VecDeque<Step>,
    last: Option<Step>,
}

impl ScriptedSensor {
    pub fn new(domain: &str, steps: Vec<Step>) -> ScriptedSensor {
        ScriptedSensor {
            id: format!("scripted:{domain}"),
            domain: domain.to_string(),
            provenance: Provenance::Measured,
            steps: steps.into(),
            last: None,
        }
    }

    /// A counter in microjoules playing back `raws`, wrapping at `wrap_at`.
    pub fn counter_uj(domain: &str, raws: &[u64], wrap_at: u64) -> ScriptedSensor {
        let steps =
            raws.iter().map(|&raw| Step::Read(Reading::Counter { raw, wrap_at, joules_per_unit: 1e-6 })).collect();
        ScriptedSensor::new(domain, steps)
    }

    /// Renames the sensor (ids must be unique within one meter).
    pub fn with_id(mut self, id: &str) -> ScriptedSensor {
        self.id = id.to_string();
        self
    }
}

impl Sensor for ScriptedSensor {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            id: self.id.clone(),
            kind: "scripted".to_string(),
            domain: self.domain.clone(),
            provenance: self.provenance,
            sample_hz: 0.0,
            update_period_s: 0.0,
            detail: serde_json::Value::Null,
        }
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        if let Some(step) = self.steps.pop_front() {
            self.last = Some(step);
        }
        match &self.last {
            Some(Step::Read(r)) => Ok(*r),
            Some(Step::Fail(message)) => {
                Err(SensorError::Transient { source_id: self.id.clone(), message: message.clone() })
            }
            None => Err(SensorError::Unavailable { source_id: self.id.clone(), reason: "empty script".to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_power_is_constant_and_measured() {
        let mut s = FakePower::new("cpu", Watts(50.0));
        assert_eq!(s.read().unwrap(), Reading::Power(Watts(50.0)));
        let info = s.info();
        assert_eq!(info.provenance, Provenance::Measured);
        assert_eq!((info.id.as_str(), info.kind.as_str()), ("fake:cpu", "fake"));
    }

    #[test]
    fn scripted_sensor_plays_back_then_repeats_last() {
        let mut s = ScriptedSensor::new("cpu", vec![Step::Read(Reading::Power(Watts(1.0))), Step::Fail("boom".into())]);
        assert_eq!(s.read().unwrap(), Reading::Power(Watts(1.0)));
        for _ in 0..3 {
            let err = s.read().unwrap_err();
            assert!(err.to_string().contains("boom"));
        }
        let mut empty = ScriptedSensor::new("cpu", vec![]);
        assert!(matches!(empty.read(), Err(SensorError::Unavailable { .. })));
    }

    #[test]
    fn fake_counter_wraps_within_range() {
        // 1e9 units per second at 1 nJ/unit = 1 W; wraps at 1000 units, so always below.
        let mut c = FakeCounter::new("dram", Watts(1.0), 1000, 1e-9).with_offset(990);
        std::thread::sleep(std::time::Duration::from_millis(2));
        match c.read().unwrap() {
            Reading::Counter { raw, wrap_at, .. } => {
                assert_eq!(wrap_at, 1000);
                assert!(raw <= 1000);
            }
            other => panic!("expected a counter, got {other:?}"),
        }
    }
}
