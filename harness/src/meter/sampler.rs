//! The meter's internals: per-sensor channels, the shared state behind the one lock, and the
//! sampling loop. Everything here runs under that lock, on the sampler thread or on a caller
//! taking a mark.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Mark, TraceRow};
use crate::sensor::counter::{CounterAccumulator, CounterAnomaly, PowerIntegrator};
use crate::sensor::{Reading, Sensor, SensorError};
use crate::units::{Joules, Seconds};

/// What a counter step is judged over beyond its interval: two of the source's update periods,
/// at least 0.1 s (sampling jitter and a late update; [`CounterAccumulator::with_ceiling`]).
pub(super) fn counter_slack(update_period_s: f64) -> Seconds {
    Seconds((2.0 * update_period_s).max(0.1))
}

/// Read failures whose message is kept for window warnings; beyond this only counts are kept.
const MAX_EVENTS: usize = 1000;

pub(super) enum Acc {
    Unset,
    /// The accumulator and the time of the last reading.
    Counter(CounterAccumulator, Option<f64>),
    Power(PowerIntegrator),
}

pub(super) struct Channel {
    pub(super) sensor: Box<dyn Sensor>,
    pub(super) id: String,
    pub(super) domain: usize,
    pub(super) acc: Acc,
    pub(super) problems: u64,
    /// From [`Sensor::power_ceiling`], read once at start.
    pub(super) ceiling: Option<crate::units::Watts>,
    /// The slack over which counter steps are judged against the ceiling ([`counter_slack`]).
    pub(super) slack: Seconds,
}

pub(super) enum Problem {
    Sensor(SensorError),
    Anomaly(CounterAnomaly),
    KindChanged,
    /// The gap between two readings was long enough for a whole extra wrap to pass unseen
    /// ([`crate::sensor::counter::Counted::may_hide_wrap`]): the interval's energy may be short
    /// by whole counter ranges, so the window's energy for the domain is unresolved.
    GapMayHideWrap(String),
}

pub(super) struct Event {
    pub(super) sample_index: usize,
    pub(super) channel: usize,
    pub(super) message: String,
}

pub(super) struct State {
    pub(super) start: Instant,
    pub(super) channels: Vec<Channel>,
    pub(super) domains: Vec<String>,
    pub(super) cumulative: Vec<f64>,
    pub(super) power: Vec<f64>,
    pub(super) trace: Vec<f64>,
    pub(super) samples: usize,
    pub(super) events: Vec<Event>,
    pub(super) busy: Duration,
}

impl State {
    /// Reads one channel and folds the reading in; returns the power for the trace (NaN when
    /// unknown, e.g. the first counter reading).
    pub(super) fn ingest(&mut self, i: usize, t: f64) -> Result<f64, Problem> {
        let ch = &mut self.channels[i];
        let reading = ch.sensor.read().map_err(Problem::Sensor)?;
        if matches!(ch.acc, Acc::Unset) {
            ch.acc = match reading {
                Reading::Counter { .. } => Acc::Counter(CounterAccumulator::with_ceiling(ch.ceiling, ch.slack), None),
                Reading::Power(_) => Acc::Power(PowerIntegrator::new()),
            };
        }
        let mut gap_message = None;
        let (delta, power) = match (&mut ch.acc, reading) {
            (Acc::Counter(acc, last_t), Reading::Counter { raw, wrap_at, joules_per_unit }) => {
                let interval = last_t.map(|t0| Seconds(t - t0));
                let result = acc.update(raw, wrap_at, joules_per_unit, interval);
                // A reading the accumulator ignored does not move the baseline either; a rejected
                // step back does (the accumulator re-baselines on it).
                let ignored = matches!(result, Err(CounterAnomaly::AboveWrap { .. } | CounterAnomaly::BadScale { .. }));
                let previous_t = if ignored { *last_t } else { last_t.replace(t) };
                let counted = result.map_err(Problem::Anomaly)?;
                let delta = counted.energy;
                let power = match previous_t {
                    Some(t0) if t > t0 => delta.0 / (t - t0),
                    _ => f64::NAN,
                };
                if counted.may_hide_wrap {
                    let range_j = wrap_at as f64 * joules_per_unit;
                    let gap = previous_t.map_or(0.0, |t0| t - t0);
                    gap_message = Some(match ch.ceiling {
                        Some(c) => format!(
                            "{gap:.3} s between two readings is long enough for a whole extra wrap of the \
                             {range_j:.3} J counter at up to {c}: this interval's energy may be short by whole \
                             ranges (was the sampler stalled?)"
                        ),
                        None => format!(
                            "{:.3} J between two readings is more than half the counter's {range_j:.3} J range: \
                             a wrap may be hidden; sample faster (--sample-hz)",
                            delta.0
                        ),
                    });
                }
                (delta, power)
            }
            (Acc::Power(int), Reading::Power(w)) => (int.update(Seconds(t), w).map_err(Problem::Anomaly)?, w.0),
            _ => return Err(Problem::KindChanged),
        };
        self.cumulative[ch.domain] += delta.0;
        if let Some(message) = gap_message {
            self.record(i, Problem::GapMayHideWrap(message));
        }
        Ok(power)
    }

    /// Takes one sample of every sensor at `now`. Allocates only for the trace push (amortised)
    /// and for the message of a failed read.
    pub(super) fn sample(&mut self, now: Instant) {
        let t = now.saturating_duration_since(self.start).as_secs_f64();
        self.power.fill(0.0);
        for i in 0..self.channels.len() {
            let p = match self.ingest(i, t) {
                Ok(p) => p,
                Err(problem) => {
                    self.record(i, problem);
                    f64::NAN
                }
            };
            self.power[self.channels[i].domain] += p;
        }
        self.trace.push(t);
        self.trace.extend_from_slice(&self.power);
        self.samples += 1;
    }

    fn record(&mut self, i: usize, problem: Problem) {
        let ch = &mut self.channels[i];
        ch.problems += 1;
        if self.events.len() < MAX_EVENTS {
            let message = match problem {
                Problem::Sensor(e) => e.to_string(),
                Problem::Anomaly(a) => a.to_string(),
                Problem::KindChanged => "switched between counter and power readings".into(),
                Problem::GapMayHideWrap(m) => m,
            };
            self.events.push(Event { sample_index: self.samples, channel: i, message });
        }
    }

    pub(super) fn mark(&mut self, meter_id: u64) -> Mark {
        self.mark_at(meter_id, Instant::now())
    }

    pub(super) fn mark_at(&mut self, meter_id: u64, at: Instant) -> Mark {
        self.sample(at);
        Mark {
            meter_id,
            at,
            t: Seconds(self.trace[self.trace.len() - self.domains.len() - 1]),
            sample_index: self.samples - 1,
            energy: self.domains.iter().zip(&self.cumulative).map(|(d, &j)| (d.clone(), Joules(j))).collect(),
            problems: self.channels.iter().map(|c| c.problems).collect(),
            busy: self.busy,
            states: self.channels.iter_mut().filter_map(|c| Some((c.id.clone(), c.sensor.edge_state()?))).collect(),
        }
    }

    pub(super) fn rows(&self, from: usize, to_inclusive: usize) -> Vec<TraceRow> {
        let width = self.domains.len() + 1;
        let end = (to_inclusive + 1).min(self.samples);
        (from..end)
            .map(|i| {
                let row = &self.trace[i * width..(i + 1) * width];
                TraceRow {
                    t_s: row[0],
                    power_w: self
                        .domains
                        .iter()
                        .zip(&row[1..])
                        .filter(|(_, p)| p.is_finite())
                        .map(|(d, &p)| (d.clone(), p))
                        .collect(),
                }
            })
            .collect()
    }
}

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) stopped: Mutex<bool>,
    pub(super) wake: Condvar,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // A sensor that panicked poisons the lock; the energy so far is still valid.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) fn sampler_loop(shared: &Shared, start: Instant, period: Duration) {
    let mut next = start + period;
    loop {
        let stopped = shared.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let timeout = next.saturating_duration_since(Instant::now());
        let (stopped, _) =
            shared.wake.wait_timeout_while(stopped, timeout, |s| !*s).unwrap_or_else(PoisonError::into_inner);
        if *stopped {
            return;
        }
        drop(stopped);
        {
            let mut state = shared.state();
            let began = Instant::now();
            state.sample(began);
            state.busy += began.elapsed();
        }
        // Keep the grid; skip ticks we missed rather than sampling in a burst.
        next += period;
        let now = Instant::now();
        if next <= now {
            let behind = (now - next).as_secs_f64() / period.as_secs_f64();
            next += period.mul_f64(behind.floor() + 1.0);
        }
    }
}
