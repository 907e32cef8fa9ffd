use std::thread::sleep;
use std::time::Duration;

use super::*;
use crate::sensor::fake::{FakeCounter, FakePower, ScriptedSensor, Step};
use crate::sensor::{DeviceState, Reading};
use crate::units::Watts;

fn boxed<S: Sensor + 'static>(s: S) -> Box<dyn Sensor> {
    Box::new(s)
}

#[test]
fn constant_power_integrates_exactly() {
    let meter = Meter::start(vec![boxed(FakePower::new("cpu", Watts(50.0)))], 100.0).unwrap();
    let begin = meter.mark();
    sleep(Duration::from_millis(300));
    let end = meter.mark();
    let w = meter.window(&begin, &end);
    assert!(w.duration.0 >= 0.3 && w.duration.0 < 1.0, "{w:?}");
    // The trapezoid rule is exact for constant power: 50 W × duration (~15 J).
    assert!((w.total.0 - 50.0 * w.duration.0).abs() < 1e-6, "{w:?}");
    assert!((w.total.0 - 15.0).abs() < 15.0 * 0.5, "{w:?}");
    assert_eq!(w.by_domain.keys().collect::<Vec<_>>(), vec!["cpu"]);
    assert!(w.samples >= 3, "the sampler thread must have run: {w:?}");
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    assert!((w.avg_power_w()["cpu"] - 50.0).abs() < 1e-6);
}

#[test]
fn running_counter_wraps_mid_window() {
    // 20 W in µJ, wrapping every 10 J and starting 1 J before the wrap: a 0.7 s window sees
    // ~14 J, so at least one wrap is crossed while the sampler thread runs.
    let counter = FakeCounter::new("dram", Watts(20.0), 10_000_000, 1e-6).with_offset(9_000_000);
    let meter = Meter::start(vec![boxed(counter)], 100.0).unwrap();
    let begin = meter.mark();
    sleep(Duration::from_millis(700));
    let end = meter.mark();
    let w = meter.window(&begin, &end);
    let expected = 20.0 * w.duration.0;
    assert!(w.total.0 > 10.0, "more than one counter range: {w:?}");
    assert!((w.total.0 - expected).abs() < expected * 0.02, "{w:?}");
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
}

#[test]
fn scripted_wrap_between_marks_is_exact() {
    // 1 Hz: the sampler thread does not fire before the marks below are taken.
    let wrap = 1_000_000;
    let s = ScriptedSensor::counter_uj("cpu", &[900_000, 950_000, 100_000], wrap);
    let meter = Meter::start(vec![boxed(s)], 1.0).unwrap();
    let m1 = meter.mark();
    let m2 = meter.mark();
    let m3 = meter.mark();
    let w = meter.window(&m1, &m2);
    assert!((w.total.0 - 0.15).abs() < 1e-12, "{w:?}");
    assert!((meter.window(&m2, &m3).total.0).abs() < 1e-12);
    assert!((m2.energy()["cpu"].0 - 0.2).abs() < 1e-12);
}

#[test]
fn implausible_step_back_is_a_warning() {
    let s = ScriptedSensor::counter_uj("cpu", &[500_000, 600_000, 100_000, 200_000], 0);
    let meter = Meter::start(vec![boxed(s)], 1.0).unwrap();
    let m1 = meter.mark();
    let _reset = meter.mark();
    let m3 = meter.mark();
    let w = meter.window(&m1, &m3);
    // Only 100_000 -> 200_000 counts; the step back loses its interval.
    assert!((w.total.0 - 0.1).abs() < 1e-12, "{w:?}");
    assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
    assert!(w.warnings[0].contains("scripted:cpu") && w.warnings[0].contains("reset"));
    assert!(w.unresolved["cpu"].contains("reset"), "{w:?}");
}

#[test]
fn failing_sensor_gives_warning_not_panic() {
    let broken = ScriptedSensor::new(
        "gpu:0",
        vec![Step::Read(Reading::Power(Watts(100.0))), Step::Fail("device fell off the bus".into())],
    );
    let meter = Meter::start(vec![boxed(FakePower::new("cpu", Watts(10.0))), boxed(broken)], 50.0).unwrap();
    let begin = meter.mark();
    sleep(Duration::from_millis(100));
    let end = meter.mark();
    let w = meter.window(&begin, &end);
    assert!((w.by_domain["cpu"].0 - 10.0 * w.duration.0).abs() < 1e-6);
    let warning = w.warnings.iter().find(|m| m.contains("scripted:gpu:0")).expect("a warning naming the failed source");
    assert!(warning.contains("device fell off the bus"), "{warning}");
    // The trace leaves the failed domain out rather than inventing a number.
    let rows = meter.trace_between(&begin, &end);
    assert!(rows.iter().all(|r| !r.power_w.contains_key("gpu:0")));
    assert!(rows.iter().all(|r| r.power_w["cpu"] == 10.0));
}

#[test]
fn start_validates_its_inputs() {
    let fake = || boxed(FakePower::new("cpu", Watts(1.0)));
    for hz in [0.0, 0.5, 1000.5, f64::NAN, f64::INFINITY] {
        assert!(matches!(Meter::start(vec![fake()], hz), Err(MeterError::InvalidRate(_))));
    }
    assert!(matches!(Meter::start(vec![], 10.0), Err(MeterError::NoSources)));
    assert!(matches!(
        Meter::start(vec![fake(), fake()], 10.0),
        Err(MeterError::DuplicateSource(id)) if id == "fake:cpu"
    ));
    let dead = ScriptedSensor::new("npu:0", vec![Step::Fail("no driver".into())]);
    let err = Meter::start(vec![fake(), boxed(dead)], 10.0).err().unwrap();
    assert!(matches!(err, MeterError::FirstRead(_)));
    assert!(err.to_string().contains("scripted:npu:0"), "{err}");
    let nan = ScriptedSensor::new("cpu2", vec![Step::Read(Reading::Power(Watts(f64::NAN)))]);
    assert!(matches!(Meter::start(vec![boxed(nan)], 10.0), Err(MeterError::BadFirstReading { .. })));
}

#[test]
fn sources_in_one_domain_are_summed() {
    let second = ScriptedSensor::new("cpu", vec![Step::Read(Reading::Power(Watts(5.0)))]);
    let meter = Meter::start(vec![boxed(FakePower::new("cpu", Watts(10.0))), boxed(second)], 20.0).unwrap();
    let sources = meter.sources();
    assert_eq!(sources.len(), 2);
    assert!(sources.iter().all(|s| s.sample_hz == 20.0));
    let begin = meter.mark();
    sleep(Duration::from_millis(60));
    let end = meter.mark();
    let w = meter.window(&begin, &end);
    assert!((w.by_domain["cpu"].0 - 15.0 * w.duration.0).abs() < 1e-6, "{w:?}");
    let rows = meter.trace_since(&begin);
    assert!(rows.len() >= 2);
    assert!(rows.iter().all(|r| r.power_w["cpu"] == 15.0), "{rows:?}");
    assert!(rows.windows(2).all(|p| p[0].t_s <= p[1].t_s));
}

#[test]
fn short_windows_and_foreign_marks_are_flagged() {
    let mut slow = ScriptedSensor::new("cpu", vec![Step::Read(Reading::Power(Watts(1.0)))]);
    slow.id = "slow".into();
    let meter = Meter::start(vec![boxed(SlowUpdate(slow))], 1.0).unwrap();
    let other = Meter::start(vec![boxed(FakePower::new("cpu", Watts(1.0)))], 1.0).unwrap();
    let a = meter.mark();
    let b = meter.mark();
    let w = meter.window(&a, &b);
    assert!(w.warnings.iter().any(|m| m.contains("only 2 sample")), "{:?}", w.warnings);
    assert!(w.warnings.iter().any(|m| m.contains("update period")), "{:?}", w.warnings);
    let foreign = other.mark();
    let w = meter.window(&a, &foreign);
    assert!(w.warnings.iter().any(|m| m.contains("different meter")));
    let w = meter.window(&b, &a);
    assert!(w.warnings.iter().any(|m| m.contains("before the begin")));
}

#[test]
fn stop_is_idempotent_and_marks_still_work() {
    let mut meter = Meter::start(vec![boxed(FakePower::new("cpu", Watts(2.0)))], 200.0).unwrap();
    let begin = meter.mark();
    sleep(Duration::from_millis(30));
    meter.stop();
    meter.stop();
    let rows_after_stop = meter.trace_since(&begin).len();
    sleep(Duration::from_millis(30));
    assert_eq!(meter.trace_since(&begin).len(), rows_after_stop, "sampler must be stopped");
    let end = meter.mark();
    let w = meter.window(&begin, &end);
    assert!((w.total.0 - 2.0 * w.duration.0).abs() < 1e-9);
    assert_eq!(w.samples, rows_after_stop + 1);
}

/// Wraps a sensor and claims a long update period, to trigger the short-window warning.
struct SlowUpdate(ScriptedSensor);

impl Sensor for SlowUpdate {
    fn info(&self) -> SourceInfo {
        SourceInfo { update_period_s: 1.0, ..self.0.info() }
    }
    fn read(&mut self) -> Result<Reading, SensorError> {
        self.0.read()
    }
}

#[test]
fn a_sampling_gap_that_could_hide_a_wrap_makes_the_window_unresolved() {
    // 1 J range; 0.7 J between two readings: more than half the range, so a whole wrap could
    // have passed unseen. The energy still counts.
    let wrap = 1_000_000;
    let s = ScriptedSensor::counter_uj("cpu", &[0, 100_000, 800_000], wrap);
    let meter = Meter::start(vec![boxed(s)], 1.0).unwrap();
    let m1 = meter.mark();
    let m2 = meter.mark();
    let w = meter.window(&m1, &m2);
    assert!((w.total.0 - 0.7).abs() < 1e-9, "{w:?}");
    assert!(w.warnings.iter().any(|x| x.contains("wrap may be hidden")), "{:?}", w.warnings);
    assert_eq!(w.unresolved.keys().collect::<Vec<_>>(), vec!["cpu"], "{w:?}");
    assert!(w.unresolved["cpu"].contains("scripted:cpu") && w.unresolved["cpu"].contains("wrap may be hidden"));

    // The same counter read often enough raises nothing.
    let s = ScriptedSensor::counter_uj("cpu", &[0, 100_000, 400_000, 700_000], wrap);
    let meter = Meter::start(vec![boxed(s)], 1.0).unwrap();
    let m1 = meter.mark();
    let _ = meter.mark();
    let m3 = meter.mark();
    let w = meter.window(&m1, &m3);
    assert!((w.total.0 - 0.6).abs() < 1e-9, "{w:?}");
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    assert!(w.unresolved.is_empty(), "{w:?}");
}

/// Issue 10: a read that fails inside a window leaves that domain's energy incomplete; the
/// window says so per domain (not only in a warning string), and other domains stay resolved.
#[test]
fn failed_read_inside_window_makes_its_domain_unresolved() {
    let broken = ScriptedSensor::new(
        "gpu:0",
        vec![
            Step::Read(Reading::Power(Watts(100.0))),
            Step::Read(Reading::Power(Watts(100.0))),
            Step::Fail("device fell off the bus".into()),
            Step::Read(Reading::Power(Watts(100.0))),
        ],
    );
    // 1 Hz: only the marks below sample.
    let meter = Meter::start(vec![boxed(FakePower::new("cpu", Watts(10.0))), boxed(broken)], 1.0).unwrap();
    let begin = meter.mark();
    let _failed = meter.mark();
    let end = meter.mark();
    let w = meter.window(&begin, &end);
    assert_eq!(w.unresolved.keys().collect::<Vec<_>>(), vec!["gpu:0"], "{w:?}");
    let reason = &w.unresolved["gpu:0"];
    assert!(reason.starts_with("scripted:gpu:0: 1 of 3 readings"), "{reason}");
    assert!(reason.contains("device fell off the bus"), "{reason}");
    // The windows before and after the failure are complete.
    let after = meter.mark();
    assert!(meter.window(&end, &after).unresolved.is_empty());
}

/// A power sensor whose device state at each window edge is scripted: gauges and counters.
struct WithEdgeState {
    states: std::collections::VecDeque<DeviceState>,
}

impl Sensor for WithEdgeState {
    fn info(&self) -> SourceInfo {
        FakePower::new("gpu:0", Watts(100.0)).info()
    }
    fn read(&mut self) -> Result<Reading, SensorError> {
        Ok(Reading::Power(Watts(100.0)))
    }
    fn edge_state(&mut self) -> Option<DeviceState> {
        self.states.pop_front()
    }
}

fn state(temp: f64, tx: u64) -> DeviceState {
    let mut s = DeviceState::default();
    s.gauges.insert("temperature_c".into(), temp);
    s.counters.insert("pcie_tx_bytes".into(), tx);
    s
}

#[test]
fn device_state_is_taken_at_both_edges_with_counter_deltas() {
    let states = [state(40.0, 1_000), state(55.0, 4_096_000), state(50.0, 10)].into();
    // 1 Hz: only the marks below ask for the state (the sampling loop never does).
    let meter = Meter::start(vec![boxed(WithEdgeState { states })], 1.0).unwrap();
    let (m1, m2, m3) = (meter.mark(), meter.mark(), meter.mark());
    let w = meter.window(&m1, &m2);
    let s = &w.device_state["fake:gpu:0"];
    assert_eq!(s.begin.gauges["temperature_c"], 40.0);
    assert_eq!(s.end.gauges["temperature_c"], 55.0);
    assert_eq!(s.counter_deltas["pcie_tx_bytes"], 4_095_000);
    assert!(!w.warnings.iter().any(|x| x.contains("went back")), "{:?}", w.warnings);
    // A counter that went back (device reset) is reported, not turned into a huge delta.
    let w = meter.window(&m2, &m3);
    assert!(w.device_state["fake:gpu:0"].counter_deltas.is_empty(), "{w:?}");
    assert!(w.warnings.iter().any(|x| x.contains("pcie_tx_bytes went back")), "{:?}", w.warnings);
}

#[test]
fn sources_without_device_state_record_none() {
    let meter = Meter::start(vec![boxed(FakePower::new("cpu", Watts(5.0)))], 1.0).unwrap();
    let (a, b) = (meter.mark(), meter.mark());
    assert!(meter.window(&a, &b).device_state.is_empty());
}
