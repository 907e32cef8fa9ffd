//! NVIDIA GPUs through NVML (nvml-wrapper, which opens libnvidia-ml.so.1 at run time, so
//! effbench builds and runs on machines without a driver). Facts: ../shared/reference/
//! sensors.md §3 and NVIDIA's NVML API reference.
//!
//! Energy: `nvmlDeviceGetTotalEnergyConsumption` (mJ since the driver loaded; Volta and newer,
//! updated about every 100 ms) as a counter; on older GPUs `nvmlDeviceGetPowerUsage` (mW;
//! a trailing 1 s average on Ampere-and-newer) integrated by the meter. Provenance `measured`:
//! the GPU's own on-board sensor, read directly. NVML absent is a status, not an error.

use std::ffi::OsStr;
use std::sync::{Arc, OnceLock};

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::{NVML_FI_DEV_PCIE_COUNT_RX_BYTES, NVML_FI_DEV_PCIE_COUNT_TX_BYTES};
use nvml_wrapper::Nvml;

use super::{Candidate, DeviceState, Provenance, Reading, Sensor, SensorError, SourceInfo, Status};
use crate::units::Watts;

/// NVML loaded once per process (re-initialising reloads every symbol).
static NVML: OnceLock<Result<Arc<Nvml>, String>> = OnceLock::new();

fn load(lib_path: Option<&OsStr>) -> Result<Arc<Nvml>, String> {
    let init = |lib: Option<&OsStr>| -> Result<Arc<Nvml>, String> {
        let mut b = Nvml::builder();
        if let Some(p) = lib {
            b.lib_path(p);
        }
        b.init().map(Arc::new).map_err(|e| e.to_string())
    };
    match lib_path {
        // An explicit library (tests, unusual installs) bypasses the process-wide handle.
        Some(p) => init(Some(p)),
        None => NVML.get_or_init(|| init(None)).clone(),
    }
}

pub struct NvmlSensor {
    nvml: Arc<Nvml>,
    index: u32,
    counter: bool,
    info: SourceInfo,
}

impl Sensor for NvmlSensor {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        let fail = |e: nvml_wrapper::error::NvmlError| SensorError::Transient {
            source_id: self.info.id.clone(),
            message: e.to_string(),
        };
        let d = self.nvml.device_by_index(self.index).map_err(fail)?;
        if self.counter {
            let mj = d.total_energy_consumption().map_err(fail)?;
            Ok(Reading::Counter { raw: mj, wrap_at: 0, joules_per_unit: 1e-3 })
        } else {
            Ok(Reading::Power(Watts(d.power_usage().map_err(fail)? as f64 / 1000.0)))
        }
    }

    fn edge_state(&mut self) -> Option<DeviceState> {
        self.nvml.device_by_index(self.index).ok().map(|d| state_of(&d))
    }
}

/// Every NVIDIA GPU NVML reports, as candidates; one `Unavailable` candidate when NVML cannot
/// be loaded (no driver) or lists no GPU. `lib_path` overrides the library (tests).
pub fn discover(lib_path: Option<&OsStr>) -> Vec<Candidate> {
    let nvml = match load(lib_path) {
        Ok(n) => n,
        Err(e) => {
            return vec![unavailable(format!("NVML could not be loaded ({e}); no NVIDIA driver on this machine"))];
        }
    };
    let count = match nvml.device_count() {
        Ok(0) => return vec![unavailable("NVML is loaded but reports no GPU".into())],
        Ok(n) => n,
        Err(e) => return vec![unavailable(format!("NVML device count failed: {e}"))],
    };
    (0..count).map(|i| gpu(nvml.clone(), i)).collect()
}

fn unavailable(reason: String) -> Candidate {
    Candidate {
        kind: "nvml",
        id: "nvml".into(),
        domains: vec![],
        status: Status::Unavailable { reason },
        detail: serde_json::Value::Null,
        sensors: vec![],
    }
}

fn gpu(nvml: Arc<Nvml>, index: u32) -> Candidate {
    let domain = format!("gpu:{index}");
    let d = match nvml.device_by_index(index) {
        Ok(d) => d,
        Err(e) => {
            let mut c = unavailable(format!("GPU {index}: {e}"));
            c.domains = vec![domain];
            return c;
        }
    };
    let uuid = d.uuid().unwrap_or_else(|_| format!("index-{index}"));
    let id = format!("nvml:{uuid}");
    let counter = d.total_energy_consumption().is_ok();
    let power = d.power_usage().is_ok();
    let state = state_of(&d);
    let detail = serde_json::json!({
        "index": index,
        "name": d.name().ok(),
        "uuid": uuid,
        "pci_bus_id": d.pci_info().ok().map(|p| p.bus_id),
        "method": if counter { "total_energy_consumption (mJ counter)" } else { "power_usage (mW, integrated)" },
        "state_at_discovery": state,
    });
    if !counter && !power {
        return Candidate {
            kind: "nvml",
            id,
            domains: vec![domain],
            status: Status::Unavailable { reason: "this GPU reports neither total energy nor power".into() },
            detail,
            sensors: vec![],
        };
    }
    let info = SourceInfo {
        id: id.clone(),
        kind: "nvml".into(),
        domain: domain.clone(),
        provenance: Provenance::Measured,
        sample_hz: 0.0,
        // The energy counter updates about every 100 ms; power_usage is a 1 s average on
        // Ampere and newer.
        update_period_s: if counter { 0.1 } else { 1.0 },
        detail: detail.clone(),
    };
    Candidate {
        kind: "nvml",
        id,
        domains: vec![domain],
        status: Status::Ok,
        detail,
        sensors: vec![Box::new(NvmlSensor { nvml, index, counter, info })],
    }
}

/// What a result records of one GPU at each window edge; a value the GPU does not report is
/// left out. Gauges: enforced power limit (W), temperature (°C), SM clock (MHz), utilisation
/// of the GPU and of its memory over NVML's last sample period (%), memory in use (bytes).
/// Counters: PCIe bytes sent and received since the driver loaded (NVML field values 197/198,
/// driver R555 and newer; `pcie_throughput` is a 20 ms rate that blocks, so it is not used).
fn state_of(d: &nvml_wrapper::Device) -> DeviceState {
    let mut s = DeviceState::default();
    let mut gauge = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            s.gauges.insert(name.to_string(), v);
        }
    };
    gauge("power_limit_w", d.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0));
    gauge("temperature_c", d.temperature(TemperatureSensor::Gpu).ok().map(f64::from));
    gauge("sm_clock_mhz", d.clock_info(Clock::SM).ok().map(f64::from));
    let util = d.utilization_rates().ok();
    gauge("utilisation_gpu_pct", util.as_ref().map(|u| f64::from(u.gpu)));
    gauge("utilisation_memory_pct", util.as_ref().map(|u| f64::from(u.memory)));
    gauge("memory_used_bytes", d.memory_info().ok().map(|m| m.used as f64));
    let fields = [FieldId(NVML_FI_DEV_PCIE_COUNT_TX_BYTES), FieldId(NVML_FI_DEV_PCIE_COUNT_RX_BYTES)];
    if let Ok(values) = d.field_values_for(&fields) {
        for (name, v) in ["pcie_tx_bytes", "pcie_rx_bytes"].into_iter().zip(values) {
            if let Some(n) = v.ok().and_then(|v| v.value.ok()).and_then(counter_value) {
                s.counters.insert(name.to_string(), n);
            }
        }
    }
    s
}

/// A field value as a counter: unsigned, or a non-negative signed value.
fn counter_value(v: SampleValue) -> Option<u64> {
    match v {
        SampleValue::U64(n) => Some(n),
        SampleValue::U32(n) => Some(n.into()),
        SampleValue::I64(n) => u64::try_from(n).ok(),
        SampleValue::F64(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_nvml_is_a_status_not_an_error() {
        let c = discover(Some(OsStr::new("/nonexistent/libnvidia-ml.so.1")));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, "nvml");
        match &c[0].status {
            Status::Unavailable { reason } => assert!(reason.contains("no NVIDIA driver"), "{reason}"),
            s => panic!("expected unavailable, got {s:?}"),
        }
        assert!(c[0].sensors.is_empty());
    }
}
