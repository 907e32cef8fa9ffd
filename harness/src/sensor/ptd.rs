//! Wall power from an external analyzer (e.g. Yokogawa WT310) through SPEC PTDaemon's TCP text
//! protocol (`--meter ptd://HOST:PORT`). Interface source: MLCommons power-dev's PTD client
//! (`ptd_client_server/lib/common.py`, `lib/server.py`), summarised in sensors.md §4.
//!
//! effbench is only a *client*: PTDaemon is SPEC-licensed and users run their own copy on the
//! director machine; effbench never ships or downloads it.
//!
//! Two paths, one connection:
//! - **Power for the meter** ([`PtdSensor`], a [`Sensor`]): a background thread sends `Watts`
//!   every `poll_interval` and keeps the latest value; [`Sensor::read`] only copies it, so it
//!   never waits on the network (the meter's ~50 ms rule). A value older than
//!   [`PtdOptions::stale_after`] or a failed poll is a `Transient` error for the meter.
//! - **Window energy from the analyzer's own log** ([`PtdWindows`]): `Go,<period>,0,<mark>` at
//!   the window's start, `Stop`, `Uncertainty` and `RL,*,*` at its end; the samples tagged with
//!   the window's mark give Σ W × period and the uncertainty warnings ([`PtdWindowReport`]).
//!
//! Both paths share one TCP connection behind a mutex, so commands never interleave. After a
//! timeout the connection is closed and every later call fails with a clear error (a late
//! reply would otherwise answer the wrong command); there is no automatic reconnect.

mod client;
mod proto;
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;

pub use client::Quantity;
pub use proto::{
    make_mark, parse_meter_url, LogLine, PtdAddress, PtdChannel, PtdError, PtdRange, PtdRanges, PtdSample,
    DEFAULT_PORT, HELLO_REPLY,
};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use client::PtdClient;
use serde_json::json;

use super::latest::{lock, Latest};
use super::{Provenance, Reading, Sensor, SensorError, SourceInfo};
use crate::units::{Joules, Seconds, Watts};

/// MLPerf's limit on the analyzer's reported uncertainty, in percent (`compliance/check.py`).
pub const UNCERTAINTY_LIMIT_PCT: f64 = 1.0;
/// A window shorter than this many sample periods is flagged (sensors.md §4.2).
pub const MIN_WINDOW_SAMPLES: usize = 60;

/// How to talk to PTDaemon. `Default` gives the values documented on each field.
#[derive(Clone, Debug, PartialEq)]
pub struct PtdOptions {
    /// TCP connect timeout. Default 5 s.
    pub connect_timeout: Duration,
    /// How long one reply (or one `RL` log line) may take. Default 5 s.
    pub reply_timeout: Duration,
    /// How often the background thread asks `Watts`. Default 1 s (PTD logs at 1 Hz).
    pub poll_interval: Duration,
    /// The sample period sent with `Go`, in ms. Default 1000 (what power-dev uses).
    pub sample_period_ms: u32,
    /// `SR,V,…` to send after connecting; `None` leaves the analyzer as it is. Default `None`.
    pub voltage_range: Option<PtdRange>,
    /// `SR,A,…` to send after connecting; `None` leaves the analyzer as it is. Default `None`.
    pub current_range: Option<PtdRange>,
}

impl Default for PtdOptions {
    fn default() -> Self {
        PtdOptions {
            connect_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            sample_period_ms: 1000,
            voltage_range: None,
            current_range: None,
        }
    }
}

impl PtdOptions {
    /// How old the latest `Watts` value may be before `read` reports it as stale: two poll
    /// intervals plus one reply timeout.
    pub fn stale_after(&self) -> Duration {
        self.poll_interval * 2 + self.reply_timeout
    }
}

/// What the analyzer logged for one window ([`PtdWindows::end_window`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PtdWindowReport {
    pub mark: String,
    /// The samples tagged with this window's mark, in the daemon's order.
    pub samples: Vec<PtdSample>,
    /// Σ watts × sample period over `samples`. PTDaemon gives no energy figure itself; this is
    /// computed here from its samples. `None` when there are no samples.
    pub energy: Option<Joules>,
    /// `samples.len()` × the sample period.
    pub duration: Seconds,
    /// Highest volts / amps seen (for choosing fixed ranges after a ranging window); `None`
    /// without samples. PTD sends -1 for "not reported".
    pub max_volts: Option<f64>,
    pub max_amps: Option<f64>,
    /// The `Uncertainty` reply verbatim, and the number in it (percent).
    pub uncertainty_reply: Option<String>,
    pub uncertainty_pct: Option<f64>,
    /// Uncertainty above 1 %, daemon `ERROR` lines, unparsable lines, samples of other marks,
    /// a window shorter than 60 periods. Copy them into the result; empty when all is well.
    pub warnings: Vec<String>,
}

struct Session {
    client: PtdClient,
    open: Option<String>,
    used: HashSet<String>,
}

impl Drop for Session {
    /// A window left open (a run that failed midway) is stopped, so the daemon does not log on.
    fn drop(&mut self) {
        if self.open.is_some() {
            let _ = self.client.stop();
        }
    }
}

struct Shared {
    session: Mutex<Session>,
    /// The latest `Watts` poll: its time and value, or the error it gave.
    latest: Arc<Latest<Result<f64, String>>>,
}

/// Wall power (domain `system`, provenance `measured`) from PTDaemon. Kind `ptd`, id
/// `ptd:<host>:<port>`. See the module docs for the threading model.
pub struct PtdSensor {
    shared: Arc<Shared>,
    info: SourceInfo,
    stale_after: Duration,
    poller: Option<JoinHandle<()>>,
    windows: PtdWindows,
}

impl PtdSensor {
    /// Connects to `addr` (`host:port` or `ptd://host:port`), then sends `Hello` (reply must be
    /// `Hello, PTDaemon here!`), `Identify`, `RR`, the `SR` commands `opts` asks for, and one
    /// `Watts`, so a sensor that cannot be read fails here. Starts the `Watts` poller.
    pub fn connect(addr: &str, opts: PtdOptions) -> Result<PtdSensor, SensorError> {
        let unavailable =
            |id: &str, e: PtdError| SensorError::Unavailable { source_id: id.into(), reason: e.to_string() };
        let address = parse_meter_url(addr)
            .map_err(|reason| SensorError::Unavailable { source_id: format!("ptd:{addr}"), reason })?;
        let id = format!("ptd:{address}");
        let mut client =
            PtdClient::connect(&address, opts.connect_timeout, opts.reply_timeout).map_err(|e| unavailable(&id, e))?;
        let (identity, ranges, first) = (|| {
            client.hello()?;
            let identity = client.identify()?;
            // Some daemons may refuse RR; then ranges are simply not restored.
            let ranges = match client.read_ranges() {
                Ok(r) => Some(r),
                Err(PtdError::Refused { .. }) => None,
                Err(e) => return Err(e),
            };
            if let Some(r) = opts.voltage_range {
                client.set_range(Quantity::Volts, r)?;
            }
            if let Some(r) = opts.current_range {
                client.set_range(Quantity::Amps, r)?;
            }
            let first = client.watts()?;
            Ok((identity, ranges, first))
        })()
        .map_err(|e| unavailable(&id, e))?;

        let info = SourceInfo {
            id,
            kind: "ptd".into(),
            domain: "system".into(),
            provenance: Provenance::Measured,
            sample_hz: 0.0,
            update_period_s: opts.poll_interval.as_secs_f64().max(f64::from(opts.sample_period_ms) / 1000.0),
            detail: json!({
                "address": address.to_string(),
                "identity": identity,
                "ranges_at_connect": ranges.map(|r| json!({
                    "amp_autorange": r.amp_autorange, "amp_range": r.amp_range,
                    "volt_autorange": r.volt_autorange, "volt_range": r.volt_range,
                })),
                "poll_interval_s": opts.poll_interval.as_secs_f64(),
                "sample_period_ms": opts.sample_period_ms,
                "method": "latest `Watts` reply, polled in the background; per-window energy comes from the analyzer log (RL)",
            }),
        };
        let shared = Arc::new(Shared {
            session: Mutex::new(Session { client, open: None, used: HashSet::new() }),
            latest: Latest::new(Ok(first)),
        });
        let poll_shared = Arc::clone(&shared);
        let poller = shared
            .latest
            .spawn_poller("effbench-ptd", opts.poll_interval, move || {
                lock(&poll_shared.session).client.watts().map_err(|e| e.to_string())
            })
            .map_err(|e| SensorError::Unavailable {
                source_id: info.id.clone(),
                reason: format!("cannot start the PTDaemon polling thread: {e}"),
            })?;
        let windows = PtdWindows { shared: Arc::clone(&shared), period_ms: opts.sample_period_ms };
        Ok(PtdSensor { shared, info, stale_after: opts.stale_after(), poller: Some(poller), windows })
    }

    /// A handle for marking windows. Take it before handing the sensor to the meter; it keeps
    /// the connection open after the sensor is dropped.
    pub fn windows(&self) -> PtdWindows {
        self.windows.clone()
    }
}

impl Sensor for PtdSensor {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    /// Copies the latest polled value: no network I/O, never blocks beyond a short lock.
    fn read(&mut self) -> Result<Reading, SensorError> {
        self.shared.latest.with(|age, latest| match latest {
            Ok(w) if age <= self.stale_after => Ok(Reading::Power(Watts(*w))),
            Ok(_) => Err(SensorError::Transient {
                source_id: self.info.id.clone(),
                message: format!(
                    "latest PTDaemon power is {:.1} s old; the polling thread is stuck",
                    age.as_secs_f64()
                ),
            }),
            Err(message) => Err(SensorError::Transient { source_id: self.info.id.clone(), message: message.clone() }),
        })
    }
}

impl Drop for PtdSensor {
    fn drop(&mut self) {
        self.shared.latest.stop();
        if let Some(t) = self.poller.take() {
            let _ = t.join();
        }
    }
}

/// Marks measurement windows in the analyzer's log. `Send + Sync + Clone`; every call holds
/// the connection for one command sequence (at most a few reply timeouts).
#[derive(Clone)]
pub struct PtdWindows {
    shared: Arc<Shared>,
    period_ms: u32,
}

impl PtdWindows {
    /// `Go,<period_ms>,0,<mark>`. Marks are plain tokens ([A-Za-z0-9_.-], 1-64 chars), unique
    /// per connection (so `RL` cannot mix two windows), and one window is open at a time.
    pub fn begin_window(&self, mark: &str) -> Result<(), PtdError> {
        proto::check_mark(mark)?;
        let mut s = lock(&self.shared.session);
        let state = |reason: String| Err(PtdError::WindowState { mark: mark.into(), reason });
        if let Some(open) = &s.open {
            return state(format!("window {open:?} is still open; end it first"));
        }
        if s.used.contains(mark) {
            return state("this mark was already used on this connection; marks must be unique".into());
        }
        s.client.go(self.period_ms, mark)?;
        s.open = Some(mark.to_string());
        s.used.insert(mark.to_string());
        Ok(())
    }

    /// `Stop`, `Uncertainty`, then `RL,*,*` (or its fallbacks); returns this window's samples,
    /// energy and warnings. An `Uncertainty` refusal is a warning, not an error. After an error
    /// the window counts as ended.
    pub fn end_window(&self, mark: &str) -> Result<PtdWindowReport, PtdError> {
        let mut s = lock(&self.shared.session);
        if s.open.as_deref() != Some(mark) {
            let reason = match &s.open {
                Some(open) => format!("the open window is {open:?}"),
                None => "no window is open".into(),
            };
            return Err(PtdError::WindowState { mark: mark.into(), reason });
        }
        // Closed on our side even if `Stop` fails: the error says what happened, and a retry
        // of `end_window` could only fail again.
        s.open = None;
        s.client.stop()?;
        let mut warnings = Vec::new();
        let uncertainty_reply = s.client.uncertainty()?;
        let uncertainty_pct = if proto::is_failure(&uncertainty_reply) {
            warnings.push(format!("PTDaemon gave no uncertainty ({uncertainty_reply:?}); the analyzer's accuracy for this window is unchecked"));
            None
        } else {
            let pct = proto::parse_uncertainty(&uncertainty_reply);
            match pct {
                Some(p) if p > UNCERTAINTY_LIMIT_PCT => warnings.push(format!(
                    "PTDaemon uncertainty {p:.2}% is above the {UNCERTAINTY_LIMIT_PCT:.2}% limit; fix the analyzer ranges \
                     (run a ranging window, then set SR,V/SR,A) before trusting this window"
                )),
                None => warnings.push(format!("PTDaemon uncertainty reply {uncertainty_reply:?} holds no number")),
                _ => {}
            }
            pct
        };
        let (lines, unparsed) = s.client.read_log()?;
        drop(s);
        warnings.extend(unparsed);
        Ok(self.report(mark, lines, Some(uncertainty_reply), uncertainty_pct, warnings))
    }

    fn report(
        &self,
        mark: &str,
        lines: Vec<LogLine>,
        uncertainty_reply: Option<String>,
        uncertainty_pct: Option<f64>,
        mut warnings: Vec<String>,
    ) -> PtdWindowReport {
        let period_s = f64::from(self.period_ms) / 1000.0;
        let mut samples = Vec::new();
        let mut other = 0usize;
        for line in lines {
            match line {
                LogLine::Sample(s) if s.mark == mark => samples.push(s),
                LogLine::Sample(_) => other += 1,
                LogLine::DaemonError { time, message } => warnings.push(format!(
                    "PTDaemon logged an error at {time}: {message}; that sample is missing from the window's energy"
                )),
            }
        }
        if other > 0 {
            warnings.push(format!("{other} sample(s) read back carried another mark and were left out"));
        }
        if samples.len() < MIN_WINDOW_SAMPLES {
            warnings.push(format!(
                "window {mark:?} has {} analyzer sample(s), fewer than {MIN_WINDOW_SAMPLES} sample periods; its \
                 wall energy is unreliable, measure longer windows",
                samples.len()
            ));
        }
        let energy = (!samples.is_empty()).then(|| Joules(samples.iter().map(|s| s.watts * period_s).sum()));
        let fold = |f: fn(&PtdSample) -> f64| samples.iter().map(f).reduce(f64::max);
        PtdWindowReport {
            mark: mark.into(),
            duration: Seconds(samples.len() as f64 * period_s),
            max_volts: fold(|s| s.volts),
            max_amps: fold(|s| s.amps),
            energy,
            samples,
            uncertainty_reply,
            uncertainty_pct,
            warnings,
        }
    }

    /// `SR,V,…` / `SR,A,…` between windows (e.g. fixed ranges after a ranging window). The
    /// ranges found at connect are restored when the connection closes.
    pub fn set_range(&self, q: Quantity, r: PtdRange) -> Result<(), PtdError> {
        lock(&self.shared.session).client.set_range(q, r)
    }

    /// `RR`: the analyzer's current ranges.
    pub fn ranges(&self) -> Result<PtdRanges, PtdError> {
        lock(&self.shared.session).client.read_ranges()
    }
}
