//! Wall power from an external analyzer (e.g. Yokogawa WT310) through SPEC PTDaemon's TCP text
//! protocol (`--meter ptd://HOST:PORT`). Interface source: MLCommons power-dev's PTD client
//! (`ptd_client_server/lib/common.py`, `lib/server.py`), summarised in sensors.md §4; reply
//! formats from recorded real PTDaemon 1.10 sessions (see [`proto`] and [`log`]).
//!
//! effbench is only a *client*: PTDaemon is SPEC-licensed and users run their own copy on the
//! director machine; effbench never ships or downloads it.
//!
//! Two paths, one connection:
//! - **Window energy from the analyzer's own log** ([`PtdWindows`]): `Go,<period>,0,<mark>` at
//!   the window's start; `Stop`, `RL` (or its fallbacks), `Uncertainty` and `Watts` at its end,
//!   in power-dev's order. The window's energy is computed from the samples the analyzer
//!   logged in between ([`window`]); this is the only wall energy effbench reports.
//! - **A live reading for the meter's trace** ([`PtdSensor`], a [`Sensor`]): `Watts` is the
//!   running *average* of the current measurement, not a sample, so the poller differences
//!   consecutive replies: (avg₂·n₂ − avg₁·n₁)/(n₂ − n₁) is the mean power of the samples the
//!   analyzer logged between two polls. Between windows the analyzer logs nothing and the last
//!   value is held. It is for display; each repeat's `system` energy is replaced by the
//!   window's log energy.
//!
//! Both paths share one TCP connection behind a mutex, so commands never interleave. After a
//! timeout the connection is closed and every later call fails with a clear error (a late
//! reply would otherwise answer the wrong command); there is no automatic reconnect.

mod client;
pub mod log;
pub mod proto;
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod window;
mod windows;

pub use client::Quantity;
pub use log::{LogLine, PtdChannel, PtdSample};
pub use proto::{
    make_mark, parse_meter_url, PtdAddress, PtdError, PtdRange, PtdRanges, UncertaintyStats, WattsStats, DEFAULT_PORT,
    HELLO_REPLY,
};
pub use window::{PtdWindowReport, Uncertainty};
pub use windows::PtdWindows;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use client::PtdClient;
use serde_json::json;

use super::latest::{lock, Latest};
use super::{Provenance, Reading, Sensor, SensorError, SourceInfo};
use crate::units::Watts;

/// MLPerf's limit on the analyzer's reported uncertainty, in percent (`compliance/check.py`:
/// "Uncertainty …%, which is above 1.00% limit").
pub const UNCERTAINTY_LIMIT_PCT: f64 = 1.0;
/// A window needs at least this many analyzer samples to be a measurement (sensors.md §4.2:
/// reject windows shorter than 60 sample periods; the edge error is then at most ~1/60).
pub const MIN_WINDOW_SAMPLES: usize = 60;

/// How to talk to PTDaemon. `Default` gives the values documented on each field.
#[derive(Clone, Debug, PartialEq)]
pub struct PtdOptions {
    /// TCP connect timeout. Default 5 s.
    pub connect_timeout: Duration,
    /// How long one reply (or one `RL` log line) may take. Default 5 s.
    pub reply_timeout: Duration,
    /// How long an `SR` reply may take: a real WT333E took 5-6 s. Default 15 s.
    pub range_timeout: Duration,
    /// How often the background thread asks `Watts`. Default 1 s.
    pub poll_interval: Duration,
    /// The sample period sent with `Go`, in ms. Default 1000 (what power-dev uses). The
    /// daemon's reply to `Go` names the period it uses; that one is taken.
    pub sample_period_ms: u32,
    /// `SR,V,…` to send after connecting; `None` leaves the analyzer as it is. Default `None`.
    pub voltage_range: Option<PtdRange>,
    /// `SR,A,…` to send after connecting; `None` leaves the analyzer as it is. Default `None`.
    pub current_range: Option<PtdRange>,
    /// Fewest samples a window needs to be a measurement. Default [`MIN_WINDOW_SAMPLES`].
    pub min_samples: usize,
    /// Uncertainty above this (percent, worst sample) flags the window. Default 1.0.
    pub max_uncertainty_pct: f64,
    /// Seconds to wait after changing ranges before measuring (power-dev waits 10 s).
    pub settle: Duration,
}

impl Default for PtdOptions {
    fn default() -> Self {
        PtdOptions {
            connect_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(5),
            range_timeout: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
            sample_period_ms: 1000,
            voltage_range: None,
            current_range: None,
            min_samples: MIN_WINDOW_SAMPLES,
            max_uncertainty_pct: UNCERTAINTY_LIMIT_PCT,
            settle: Duration::from_secs(10),
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

struct Session {
    client: PtdClient,
    open: Option<windows::Open>,
    used: std::collections::HashSet<String>,
    /// The period the daemon confirmed for the last `Go`, in seconds.
    period_s: f64,
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
    /// The latest live power (module docs), or the error the poll gave.
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

/// Turns consecutive `Watts` replies into the mean power of the samples logged in between.
#[derive(Default)]
struct Differencer {
    last: Option<WattsStats>,
    power: Option<f64>,
}

impl Differencer {
    fn push(&mut self, w: WattsStats) -> Option<f64> {
        let new = match self.last {
            Some(l) if w.samples > l.samples => {
                Some((w.avg * w.samples as f64 - l.avg * l.samples as f64) / (w.samples - l.samples) as f64)
            }
            // A new measurement started since the last poll: all its samples are new.
            Some(l) if w.samples < l.samples && w.samples > 0 => Some(w.avg),
            Some(_) => None,
            None => (w.samples > 0).then_some(w.avg),
        };
        self.last = Some(w);
        if new.is_some() {
            self.power = new;
        }
        self.power
    }
}

impl PtdSensor {
    /// Connects to `addr` (`host:port` or `ptd://host:port`), then sends `Hello` (reply must be
    /// `Hello, PTDaemon here!`), `Identify`, `RR`, the `SR` commands `opts` asks for, and one
    /// `Watts`, so a daemon that cannot be read fails here. Starts the `Watts` poller.
    pub fn connect(addr: &str, opts: PtdOptions) -> Result<PtdSensor, SensorError> {
        let unavailable =
            |id: &str, e: PtdError| SensorError::Unavailable { source_id: id.into(), reason: e.to_string() };
        let address = parse_meter_url(addr)
            .map_err(|reason| SensorError::Unavailable { source_id: format!("ptd:{addr}"), reason })?;
        let id = format!("ptd:{address}");
        let mut client = PtdClient::connect(&address, opts.connect_timeout, opts.reply_timeout, opts.range_timeout)
            .map_err(|e| unavailable(&id, e))?;
        let (identity, ranges, first) = handshake(&mut client, &opts).map_err(|e| unavailable(&id, e))?;
        let mut diff = Differencer::default();
        let first_power = diff.push(first).unwrap_or(0.0);
        let period_s = f64::from(opts.sample_period_ms) / 1000.0;
        let info = SourceInfo {
            id,
            kind: "ptd".into(),
            domain: "system".into(),
            provenance: Provenance::Measured,
            sample_hz: 0.0,
            update_period_s: period_s.max(opts.poll_interval.as_secs_f64()),
            detail: json!({
                "address": address.to_string(),
                "identity": identity,
                "ranges_at_connect": ranges.map(|r| json!({
                    "amp_autorange": r.amp_autorange, "amp_range": r.amp_range,
                    "volt_autorange": r.volt_autorange, "volt_range": r.volt_range,
                })),
                "poll_interval_s": opts.poll_interval.as_secs_f64(),
                "sample_period_ms": opts.sample_period_ms,
                "min_window_samples": opts.min_samples,
                "max_uncertainty_pct": opts.max_uncertainty_pct,
                "method": "window energy = mean of the analyzer's logged samples (RL) between Go and Stop x the \
                           window's length; the trace's live power differences the daemon's running Watts average",
            }),
        };
        let session = Session { client, open: None, used: Default::default(), period_s };
        let shared = Arc::new(Shared { session: Mutex::new(session), latest: Latest::new(Ok(first_power)) });
        let poll_shared = Arc::clone(&shared);
        let poller = shared
            .latest
            .spawn_poller("effbench-ptd", opts.poll_interval, move || {
                let w = lock(&poll_shared.session).client.watts().map_err(|e| e.to_string())?;
                Ok(diff.push(w).unwrap_or(0.0))
            })
            .map_err(|e| SensorError::Unavailable {
                source_id: info.id.clone(),
                reason: format!("cannot start the PTDaemon polling thread: {e}"),
            })?;
        let windows = PtdWindows::new(Arc::clone(&shared), &opts);
        Ok(PtdSensor { shared, info, stale_after: opts.stale_after(), poller: Some(poller), windows })
    }

    /// A handle for marking windows. Take it before handing the sensor to the meter; it keeps
    /// the connection open after the sensor is dropped.
    pub fn windows(&self) -> PtdWindows {
        self.windows.clone()
    }
}

type Handshake = (String, Option<PtdRanges>, WattsStats);

fn handshake(client: &mut PtdClient, opts: &PtdOptions) -> Result<Handshake, PtdError> {
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
