//! Energy sources. Each source is one file implementing [`Sensor`]; the [`crate::meter`] polls
//! them all from one thread and turns their readings into energy with the ONE counter helper
//! ([`counter::CounterAccumulator`]) and the ONE power integrator ([`counter::PowerIntegrator`]).
//!
//! Sensors gather, the meter accumulates, results and reports expose: a sensor knows nothing of
//! windows, repeats or workloads.

pub mod command;
pub mod counter;
pub mod discover;
pub mod estimate;
pub mod fake;
pub mod hwmon;
mod latest;
pub mod nvml;
pub mod ptd;
pub mod rapl;
pub mod sysfs;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units::Watts;

/// Where a number comes from. Travels with every energy figure; an estimate is never printed
/// as a measurement, and figures of different provenance are not compared (design.md,
/// sensors.md §0 and §7.4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// Read from an instrument we trust: on-die energy counters (RAPL, hwmon), a wall meter.
    Measured,
    /// Computed from a model (rated power × utilisation); never a measurement.
    Estimated,
    /// Reported by a vendor's tool whose method we cannot inspect (NPU SMIs through
    /// `--power-command`, a runner's own power telemetry). NVML reads the GPU's on-board sensor
    /// directly and counts as measured.
    VendorReported,
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provenance::Measured => "measured",
            Provenance::Estimated => "estimated",
            Provenance::VendorReported => "vendor-reported",
        })
    }
}

/// What a source is, as recorded in every result file (`energy_sources`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Unique among the sources of one run, stable across runs on one host:
    /// `rapl:package-0`, `nvml:GPU-<uuid>`, `estimate:cpu`, `fake:cpu`.
    pub id: String,
    /// The implementation: `rapl`, `hwmon`, `nvml`, `ptd`, `command`, `estimate`, `fake`.
    pub kind: String,
    /// What the energy belongs to: `cpu`, `dram`, `gpu:0`, `npu:0`, `system`. Sources with the
    /// same domain are summed by the meter.
    pub domain: String,
    pub provenance: Provenance,
    /// How often the meter polled this source, in Hz. Sensors report 0; the meter fills it in.
    #[serde(default)]
    pub sample_hz: f64,
    /// How often the underlying value changes, in seconds (RAPL ~0.001, NVML power ~0.1-1,
    /// the CPU estimate 0.2). A window shorter than this is flagged by the meter. 0 = unknown.
    pub update_period_s: f64,
    /// Source-specific facts: sysfs paths for real sensors; model name, formula and every
    /// parameter (with their sources) for estimates.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// One raw reading. Sensors report what their hardware reports; conversion to energy happens
/// once, in the meter.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Reading {
    /// A cumulative energy counter (RAPL `energy_uj`, NVML total energy in mJ, hwmon
    /// `energyN_input` in µJ). `raw` only grows, except that it restarts from 0 after reaching
    /// `wrap_at` (0 = the counter does not wrap within u64). `joules_per_unit` converts raw
    /// units to joules (1e-6 for µJ). Both must be the same on every read of one sensor.
    Counter { raw: u64, wrap_at: u64, joules_per_unit: f64 },
    /// Instantaneous (or short-average) power, integrated by the meter with the trapezoid rule.
    Power(Watts),
}

/// Why a sensor could not be read. Every variant names the source; messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error("energy source {source_id} is not available: {reason}")]
    Unavailable { source_id: String, reason: String },

    #[error(
        "energy source {source_id}: permission denied reading {}; {hint}",
        path.display()
    )]
    PermissionDenied { source_id: String, path: PathBuf, hint: String },

    #[error(
        "energy source {source_id}: cannot read {}: {error}; check that the device is still present",
        path.display()
    )]
    Io {
        source_id: String,
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },

    #[error(
        "energy source {source_id}: cannot parse {raw:?} from {} as {expected}; \
         the interface may have changed, please report it with the file's contents",
        path.display()
    )]
    Parse { source_id: String, path: PathBuf, raw: String, expected: String },

    #[error("energy source {source_id}: reading {raw} is out of range: {reason}")]
    OutOfRange { source_id: String, raw: String, reason: String },

    #[error("energy source {source_id}: read failed ({message}); the meter will retry")]
    Transient { source_id: String, message: String },
}

impl SensorError {
    /// The id of the source that failed.
    pub fn source_id(&self) -> &str {
        match self {
            SensorError::Unavailable { source_id, .. }
            | SensorError::PermissionDenied { source_id, .. }
            | SensorError::Io { source_id, .. }
            | SensorError::Parse { source_id, .. }
            | SensorError::OutOfRange { source_id, .. }
            | SensorError::Transient { source_id, .. } => source_id,
        }
    }
}

/// A source of energy readings for one domain.
///
/// Contract:
/// - **Units**: [`Reading::Counter`] carries the hardware's raw units plus the factor to joules;
///   [`Reading::Power`] is in watts. A sensor returns the same variant on every read.
/// - **Monotonicity**: a counter's `raw` never decreases except by wrapping at `wrap_at`; the
///   meter rejects a step back that a wrap cannot explain (or, given a power ceiling, any step
///   that would mean more than it), and that window's energy for the domain is unresolved.
/// - **Cost per call**: `read` is called from the meter's thread up to 1000 times a second and
///   while the caller waits at a window edge, so it must be cheap (a sysfs read, an FFI call)
///   and must not block for more than ~50 ms. It should not allocate on success.
/// - **Errors**: a failed read returns `Err`; the meter records it as a warning and as the
///   domain's unresolved energy for any window it falls in, and keeps going. Only a failure on the first read (in `Meter::start`) is fatal.
/// - **Thread safety**: `Send` only. The meter owns every sensor behind one lock, so `read` is
///   never called concurrently and needs no internal synchronisation.
/// - **Info**: `info` is called once when the meter starts; `sample_hz` is left at 0.
/// - **Power ceiling**: `power_ceiling` is called once when the meter starts: the most power
///   the source's domain can plausibly draw, for a counter source whose wraps must be told
///   from resets ([`counter::CounterAccumulator`]). `None` (the default) keeps the
///   half-range rule.
/// - **Edge state**: `edge_state` is called only at window edges ([`crate::meter::Meter::mark`]),
///   never by the sampling loop, so it may cost a few FFI calls; it must not block.
pub trait Sensor: Send {
    fn info(&self) -> SourceInfo;
    fn read(&mut self) -> Result<Reading, SensorError>;
    /// The device's state worth recording beside a window's energy (power limit, temperature,
    /// clocks, utilisation, cumulative byte counters). `None` (the default) for sources that
    /// have none.
    fn edge_state(&mut self) -> Option<DeviceState> {
        None
    }
    /// The most this source's domain can plausibly draw (see the contract above).
    fn power_ceiling(&self) -> Option<Watts> {
        None
    }
}

/// A device's state at one instant: gauges (a value now: watts, degrees, MHz, percent) and
/// monotonic counters (bytes since some origin), whose difference over a window the meter
/// reports. A quantity the device does not report is simply absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gauges: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

/// A source's device state at a window's two edges.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeStates {
    pub begin: DeviceState,
    pub end: DeviceState,
    /// `end - begin` for every counter present at both edges that did not go back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counter_deltas: BTreeMap<String, u64>,
}

/// What discovery found for one candidate source. `effbench sensors` prints every candidate
/// (found, refused or absent); `effbench run` meters the `sensors` of those that are `Ok`.
pub struct Candidate {
    /// `rapl`, `hwmon`, `nvml`, `ptd`, `command`, `estimate`.
    pub kind: &'static str,
    /// Stable id, e.g. `rapl:package-0`, `hwmon:amdgpu@0000:03:00.0`.
    pub id: String,
    /// The energy domains it covers (`cpu`, `dram`, `gpu:0`, `npu:0`, `system`).
    pub domains: Vec<String>,
    pub status: Status,
    /// Paths, device names, bus addresses: whatever tells a user which device this is.
    pub detail: serde_json::Value,
    /// Readable sensors (non-empty only when `status` is `Ok` or `Estimated`).
    pub sensors: Vec<Box<dyn Sensor>>,
}

/// A candidate's state, as `effbench sensors` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// Measured and readable now.
    Ok,
    /// Present but not readable by this user; `fix` says exactly what to do.
    PermissionDenied { fix: String },
    /// Not present or not usable; `reason` says why.
    Unavailable { reason: String },
    /// A model, not a measurement.
    Estimated,
}

/// The sources to use when the user names none. For now: the CPU estimate. Later, measured
/// sources (RAPL, hwmon, NVML) come first and the estimate covers only domains without one.
pub fn discover_default() -> Vec<Box<dyn Sensor>> {
    vec![Box::new(estimate::CpuEstimate::from_system())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_serialises_kebab_case() {
        let all = [Provenance::Measured, Provenance::Estimated, Provenance::VendorReported];
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(json, r#"["measured","estimated","vendor-reported"]"#);
        for p in all {
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        let back: Vec<Provenance> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn errors_name_source_path_and_raw_value() {
        let e = SensorError::Parse {
            source_id: "rapl:package-0".into(),
            path: PathBuf::from("/sys/class/powercap/intel-rapl:0/energy_uj"),
            raw: "abc".into(),
            expected: "an integer count of microjoules".into(),
        };
        let msg = e.to_string();
        assert!(msg.contains("rapl:package-0"), "{msg}");
        assert!(msg.contains("intel-rapl:0/energy_uj"), "{msg}");
        assert!(msg.contains("\"abc\""), "{msg}");
        assert_eq!(e.source_id(), "rapl:package-0");
    }

    #[test]
    fn default_discovery_yields_the_cpu_estimate() {
        let sensors = discover_default();
        assert_eq!(sensors.len(), 1);
        let info = sensors[0].info();
        assert_eq!(info.domain, "cpu");
        assert_eq!(info.provenance, Provenance::Estimated);
        assert_eq!(info.kind, "estimate");
    }
}
