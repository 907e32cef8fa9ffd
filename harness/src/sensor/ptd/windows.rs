//! [`PtdWindows`]: marking measurement windows in the analyzer's log, and the ranging pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::Quantity;
use super::proto::{self, PtdError, PtdRange, PtdRanges};
use super::window::{self, PtdWindowReport, WindowInput};
use super::{PtdOptions, Shared};
use crate::sensor::latest::lock;
use crate::units::Seconds;

/// The window the analyzer is logging now.
pub(super) struct Open {
    mark: String,
    since: Instant,
}

/// Marks measurement windows in the analyzer's log. `Send + Sync + Clone`; every call holds
/// the connection for one command sequence (at most a few reply timeouts).
#[derive(Clone)]
pub struct PtdWindows {
    shared: Arc<Shared>,
    period_ms: u32,
    min_samples: usize,
    max_uncertainty_pct: f64,
    settle: Duration,
}

impl PtdWindows {
    pub(super) fn new(shared: Arc<Shared>, opts: &PtdOptions) -> PtdWindows {
        PtdWindows {
            shared,
            period_ms: opts.sample_period_ms,
            min_samples: opts.min_samples,
            max_uncertainty_pct: opts.max_uncertainty_pct,
            settle: opts.settle,
        }
    }

    /// Fewest samples a window needs to be a measurement.
    pub fn min_samples(&self) -> usize {
        self.min_samples
    }

    /// The uncertainty limit, in percent.
    pub fn max_uncertainty_pct(&self) -> f64 {
        self.max_uncertainty_pct
    }

    /// The analyzer's sample period, as the daemon last confirmed it.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(lock(&self.shared.session).period_s)
    }

    /// The shortest window that resolves energy: `min_samples` periods plus two for the
    /// unaligned edges.
    pub fn min_window(&self) -> Duration {
        self.period().mul_f64(self.min_samples as f64 + 2.0)
    }

    /// `Go,<period_ms>,0,<mark>`. Marks are plain tokens ([A-Za-z0-9_.-], 1-64 chars), unique
    /// per connection, and one window is open at a time. The daemon's reply names the period
    /// it really uses; that one is used for this window.
    pub fn begin_window(&self, mark: &str) -> Result<(), PtdError> {
        proto::check_mark(mark)?;
        let mut s = lock(&self.shared.session);
        let state = |reason: String| Err(PtdError::WindowState { mark: mark.into(), reason });
        if let Some(open) = &s.open {
            return state(format!("window {:?} is still open; end it first", open.mark));
        }
        if s.used.contains(mark) {
            return state("this mark was already used on this connection; marks must be unique".into());
        }
        let reply = s.client.go(self.period_ms, mark)?;
        s.period_s = f64::from(proto::parse_go_period_ms(&reply).unwrap_or(self.period_ms)) / 1000.0;
        s.open = Some(Open { mark: mark.to_string(), since: Instant::now() });
        s.used.insert(mark.to_string());
        Ok(())
    }

    /// `Stop`, then `RL` (or its fallbacks), `Uncertainty` and `Watts`, as power-dev does;
    /// returns this window's samples, energy, uncertainty and warnings. After an error the
    /// window counts as ended.
    pub fn end_window(&self, mark: &str) -> Result<PtdWindowReport, PtdError> {
        let mut s = lock(&self.shared.session);
        let since = match &s.open {
            Some(open) if open.mark == mark => open.since,
            other => {
                let reason = match other {
                    Some(open) => format!("the open window is {:?}", open.mark),
                    None => "no window is open".into(),
                };
                return Err(PtdError::WindowState { mark: mark.into(), reason });
            }
        };
        // Closed on our side even if `Stop` fails: a retry could only fail again.
        s.open = None;
        let window_s = Seconds(since.elapsed().as_secs_f64());
        s.client.stop()?;
        let (lines, unparsed) = s.client.read_log()?;
        let uncertainty_reply = s.client.uncertainty()?;
        let watts_reply = s.client.raw("Watts").ok();
        let period_s = s.period_s;
        drop(s);
        Ok(window::report(WindowInput {
            mark: mark.to_string(),
            lines,
            unparsed,
            period_s,
            window_s,
            uncertainty_reply,
            watts_reply,
            min_samples: self.min_samples,
        }))
    }

    /// `SR,V,…` / `SR,A,…` between windows. The ranges found at connect are restored by
    /// [`PtdWindows::restore_ranges`] and when the connection closes.
    pub fn set_range(&self, q: Quantity, r: PtdRange) -> Result<(), PtdError> {
        lock(&self.shared.session).client.set_range(q, r)
    }

    /// MLPerf's ranging step, before a ranging window: both ranges to `Auto`, then the settle
    /// wait.
    pub fn auto_ranges(&self) -> Result<(), PtdError> {
        self.set_range(Quantity::Volts, PtdRange::Auto)?;
        self.set_range(Quantity::Amps, PtdRange::Auto)?;
        std::thread::sleep(self.settle);
        Ok(())
    }

    /// After a ranging window: the voltage range at the highest volts seen and the current
    /// range at 1.1 × the highest amps (power-dev's `_desirableCurrentRange`), then the settle
    /// wait. Returns the two ranges set.
    pub fn fix_ranges(&self, ranging: &PtdWindowReport) -> Result<(f64, f64), PtdError> {
        let (Some(v), Some(a)) = (ranging.max_volts, ranging.max_amps) else {
            return Err(PtdError::WindowState {
                mark: ranging.mark.clone(),
                reason: "the ranging window logged no volts or amps to set ranges from".into(),
            });
        };
        let a = a * 1.1;
        self.set_range(Quantity::Volts, PtdRange::Value(v))?;
        self.set_range(Quantity::Amps, PtdRange::Value(a))?;
        std::thread::sleep(self.settle);
        Ok((v, a))
    }

    /// Puts back the ranges found at connect, for every quantity effbench changed.
    pub fn restore_ranges(&self) -> Result<(), PtdError> {
        lock(&self.shared.session).client.restore_ranges()
    }

    /// `RR`: the analyzer's current ranges.
    pub fn ranges(&self) -> Result<PtdRanges, PtdError> {
        lock(&self.shared.session).client.read_ranges()
    }
}
