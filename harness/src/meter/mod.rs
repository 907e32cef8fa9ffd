//! The meter: ONE sampling thread that polls every sensor at a fixed rate, turns readings into
//! cumulative energy per domain (counters through [`CounterAccumulator`], power through
//! [`PowerIntegrator`]) and keeps a power trace. Window edges are exact: [`Meter::mark`] takes
//! a sample on the caller's thread, under the same lock as the sampler.
//!
//! Memory: the trace keeps every sample, `8 × (1 + domains)` bytes each (10 Hz with two
//! domains: ~860 KB per hour; 1 kHz: ~86 MB per hour).

mod sampler;
mod trace;

pub use trace::{csv_fields, trace_csv, write_trace_csv, TraceFile, TraceRow};

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sampler::{sampler_loop, Acc, Channel, Problem, Shared, State};

use crate::sensor::counter::CounterAnomaly;
use crate::sensor::{DeviceState, EdgeStates, Sensor, SensorError, SourceInfo};
use crate::units::{Joules, Seconds};

/// Default sampling rate in Hz.
pub const DEFAULT_SAMPLE_HZ: f64 = 10.0;
/// Allowed sampling rates in Hz.
pub const SAMPLE_HZ_RANGE: std::ops::RangeInclusive<f64> = 1.0..=1000.0;

static NEXT_METER_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("sample rate {0} Hz is outside 1..=1000 Hz; pick a rate in that range (default 10)")]
    InvalidRate(f64),
    #[error("no energy sources to meter; name at least one source or allow the CPU estimate")]
    NoSources,
    #[error("two energy sources share the id {0:?}; give each source its own id")]
    DuplicateSource(String),
    #[error("first reading failed, so the meter was not started: {0}")]
    FirstRead(#[from] SensorError),
    #[error("energy source {source_id}: first reading rejected: {anomaly}")]
    BadFirstReading { source_id: String, anomaly: CounterAnomaly },
    #[error("cannot start the meter thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// A point in time with the cumulative energy per domain at that instant. Obtained from
/// [`Meter::mark`]; two marks make a [`Window`].
#[derive(Clone, Debug)]
pub struct Mark {
    meter_id: u64,
    at: Instant,
    t: Seconds,
    sample_index: usize,
    energy: BTreeMap<String, Joules>,
    problems: Vec<u64>,
    busy: Duration,
    /// Each source's device state at this edge (sources that report one).
    states: BTreeMap<String, DeviceState>,
}

impl Mark {
    /// When the mark's sample was taken.
    pub fn at(&self) -> Instant {
        self.at
    }
    /// Seconds since the meter started.
    pub fn t(&self) -> Seconds {
        self.t
    }
    /// Cumulative energy per domain since the meter started.
    pub fn energy(&self) -> &BTreeMap<String, Joules> {
        &self.energy
    }
}

/// Energy between two marks.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub duration: Seconds,
    pub by_domain: BTreeMap<String, Joules>,
    pub total: Joules,
    /// Samples inside the window, both edge marks included.
    pub samples: usize,
    /// Anything that makes the figures less trustworthy: failed reads, too few samples, a
    /// window shorter than a sensor's update period. Empty when all is well.
    pub warnings: Vec<String>,
    /// Domains whose energy in this window is incomplete, with the reason: a reading of one of
    /// its sources failed or was rejected inside the window, or a gap between two readings
    /// could hide a whole counter wrap. Their figure in `by_domain` is only a lower bound;
    /// runs leave it out of the repeat's energy and record it as unresolved (design.md,
    /// "Trust"). Empty when every domain is complete.
    pub unresolved: BTreeMap<String, String>,
    /// Time the sampler thread spent sampling inside the window (its overhead).
    pub sampler_busy: Seconds,
    /// Per source that reports one: its device state at both edges and what its counters
    /// moved in between.
    pub device_state: BTreeMap<String, EdgeStates>,
}

impl Window {
    /// The figures of one of `passes` equal runs of work inside this window: duration, energy
    /// and the sampler's time divided by `passes` (samples, warnings and states are kept).
    pub fn per_pass(mut self, passes: u32) -> Window {
        let k = f64::from(passes.max(1));
        self.duration = Seconds(self.duration.0 / k);
        self.total = Joules(self.total.0 / k);
        for j in self.by_domain.values_mut() {
            *j = Joules(j.0 / k);
        }
        self.sampler_busy = Seconds(self.sampler_busy.0 / k);
        self
    }

    /// Average power over the window per domain.
    pub fn avg_power_w(&self) -> BTreeMap<String, f64> {
        self.by_domain.iter().map(|(d, j)| (d.clone(), j.0 / self.duration.0)).collect()
    }
}

/// Polls a set of sensors from one background thread.
///
/// Thread safety: `Meter` is `Send + Sync`; `mark`, `window` and `trace_*` may be called from
/// any thread and serialise with the sampler on one lock. Cost: one sample is one `read` per
/// sensor plus a trace push; `mark` costs one sample plus a small map per call.
pub struct Meter {
    id: u64,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    sources: Vec<SourceInfo>,
    sample_hz: f64,
}

impl Meter {
    /// Starts sampling `sensors` at `sample_hz` (1..=1000). The first sample is taken here,
    /// synchronously, so a sensor that cannot be read fails now rather than inside a run.
    pub fn start(sensors: Vec<Box<dyn Sensor>>, sample_hz: f64) -> Result<Meter, MeterError> {
        if !SAMPLE_HZ_RANGE.contains(&sample_hz) {
            return Err(MeterError::InvalidRate(sample_hz));
        }
        if sensors.is_empty() {
            return Err(MeterError::NoSources);
        }
        let mut sources: Vec<SourceInfo> = sensors.iter().map(|s| s.info()).collect();
        for (i, s) in sources.iter().enumerate() {
            if sources[..i].iter().any(|o| o.id == s.id) {
                return Err(MeterError::DuplicateSource(s.id.clone()));
            }
        }
        let mut domains: Vec<String> = sources.iter().map(|s| s.domain.clone()).collect();
        domains.sort();
        domains.dedup();
        let channels = sensors
            .into_iter()
            .zip(&sources)
            .map(|(sensor, info)| Channel {
                id: info.id.clone(),
                domain: domains.binary_search(&info.domain).unwrap_or(0),
                acc: Acc::Unset,
                problems: 0,
                ceiling: sensor.power_ceiling(),
                slack: sampler::counter_slack(info.update_period_s),
                sensor,
            })
            .collect();
        for s in &mut sources {
            s.sample_hz = sample_hz;
        }
        let start = Instant::now();
        let mut state = State {
            start,
            channels,
            cumulative: vec![0.0; domains.len()],
            power: vec![0.0; domains.len()],
            trace: Vec::with_capacity(1024 * (domains.len() + 1)),
            domains,
            samples: 0,
            events: Vec::new(),
            busy: Duration::ZERO,
        };
        // The synchronous first reads are the baseline, recorded as sample 0 at t = 0.
        for i in 0..state.channels.len() {
            match state.ingest(i, 0.0) {
                Ok(p) => state.power[state.channels[i].domain] += p,
                Err(problem) => {
                    let source_id = state.channels[i].id.clone();
                    return Err(match problem {
                        Problem::Sensor(e) => MeterError::FirstRead(e),
                        Problem::Anomaly(anomaly) => MeterError::BadFirstReading { source_id, anomaly },
                        Problem::KindChanged | Problem::GapMayHideWrap(_) => {
                            unreachable!("the first reading sets the kind and has no interval")
                        }
                    });
                }
            }
        }
        state.trace.push(0.0);
        state.trace.extend_from_slice(&state.power);
        state.samples = 1;

        let shared = Arc::new(Shared { state: Mutex::new(state), stopped: Mutex::new(false), wake: Condvar::new() });
        let period = Duration::from_secs_f64(1.0 / sample_hz);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("effbench-meter".into())
            .spawn(move || sampler_loop(&thread_shared, start, period))
            .map_err(MeterError::Spawn)?;
        Ok(Meter {
            id: NEXT_METER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            shared,
            thread: Some(thread),
            sources,
            sample_hz,
        })
    }

    /// Takes a sample now, on the caller's thread, and returns it as a window edge.
    pub fn mark(&self) -> Mark {
        self.shared.state().mark(self.id)
    }

    /// A mark whose sample is taken as if at `at` (a scripted clock for tests: stop the meter
    /// first so the sampler thread does not interleave real instants).
    #[cfg(test)]
    pub(crate) fn mark_at(&self, at: Instant) -> Mark {
        self.shared.state().mark_at(self.id, at)
    }

    /// Energy between two marks of this meter, with warnings for anything suspicious and the
    /// domains whose energy is incomplete ([`Window::unresolved`]).
    pub fn window(&self, begin: &Mark, end: &Mark) -> Window {
        let state = self.shared.state();
        let mut warnings = Vec::new();
        let mut unresolved = BTreeMap::new();
        if begin.meter_id != self.id || end.meter_id != self.id {
            warnings.push("marks come from a different meter; this window is meaningless".into());
        }
        if end.sample_index < begin.sample_index {
            warnings.push("the end mark was taken before the begin mark".into());
        }
        let duration = Seconds(end.at.saturating_duration_since(begin.at).as_secs_f64());
        let samples = (end.sample_index + 1).saturating_sub(begin.sample_index);
        if samples < 3 && state.channels.iter().any(|c| matches!(c.acc, Acc::Power(_))) {
            warnings.push(format!(
                "only {samples} sample(s) in this {duration:.3} window: power sources are \
                 interpolated straight across it; use a longer window or a higher sample rate"
            ));
        }
        for s in &self.sources {
            if s.update_period_s > 0.0 && duration.0 < s.update_period_s {
                warnings.push(format!(
                    "{}: window of {duration:.3} is shorter than the source's update period of \
                     {} s; its energy here is unreliable, measure longer windows",
                    s.id, s.update_period_s
                ));
            }
        }
        for (i, ch) in state.channels.iter().enumerate() {
            let before = begin.problems.get(i).copied().unwrap_or(0);
            let after = end.problems.get(i).copied().unwrap_or(0);
            if after > before {
                let first = state
                    .events
                    .iter()
                    // The begin mark's own sample belongs to the window before (its problems
                    // are already in `begin.problems`).
                    .find(|e| {
                        e.channel == i && e.sample_index > begin.sample_index && e.sample_index <= end.sample_index
                    })
                    .map_or("(message not kept)", |e| e.message.as_str());
                let what = format!(
                    "{}: {} of {samples} readings in this window failed or were rejected; \
                     first: {first}",
                    ch.id,
                    after - before
                );
                let domain = state.domains.get(ch.domain).cloned().unwrap_or_default();
                unresolved
                    .entry(domain)
                    .and_modify(|r: &mut String| {
                        r.push_str("; ");
                        r.push_str(&what);
                    })
                    .or_insert_with(|| what.clone());
                warnings.push(what);
            }
        }
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            warnings.push("the meter's sampling thread died (a sensor panicked?)".into());
        }
        let mut device_state = BTreeMap::new();
        for (id, e) in &end.states {
            let Some(b) = begin.states.get(id) else { continue };
            let mut counter_deltas = BTreeMap::new();
            for (name, &after) in &e.counters {
                let Some(&before) = b.counters.get(name) else { continue };
                match after.checked_sub(before) {
                    Some(d) => {
                        counter_deltas.insert(name.clone(), d);
                    }
                    None => warnings.push(format!(
                        "{id}: counter {name} went back from {before} to {after} in this window \
                         (device reset?); its difference is not reported"
                    )),
                }
            }
            device_state.insert(id.clone(), EdgeStates { begin: b.clone(), end: e.clone(), counter_deltas });
        }
        let by_domain: BTreeMap<String, Joules> = end
            .energy
            .iter()
            .map(|(d, &e)| (d.clone(), e - begin.energy.get(d).copied().unwrap_or_default()))
            .collect();
        Window {
            duration,
            total: by_domain.values().sum(),
            by_domain,
            samples,
            warnings,
            unresolved,
            sampler_busy: Seconds(end.busy.saturating_sub(begin.busy).as_secs_f64()),
            device_state,
        }
    }

    /// Trace rows from `mark` (included) to now.
    pub fn trace_since(&self, mark: &Mark) -> Vec<TraceRow> {
        self.shared.state().rows(mark.sample_index, usize::MAX - 1)
    }

    /// Trace rows from `begin` to `end`, both included.
    pub fn trace_between(&self, begin: &Mark, end: &Mark) -> Vec<TraceRow> {
        self.shared.state().rows(begin.sample_index, end.sample_index)
    }

    /// The sources being metered, with `sample_hz` filled in.
    pub fn sources(&self) -> Vec<SourceInfo> {
        self.sources.clone()
    }

    pub fn sample_hz(&self) -> f64 {
        self.sample_hz
    }

    /// Stops the sampling thread. Idempotent. Marks still work afterwards (sampled on the
    /// caller's thread), so a run can stop the meter and still take its final edge.
    pub fn stop(&mut self) {
        *self.shared.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
