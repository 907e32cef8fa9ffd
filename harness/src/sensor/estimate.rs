//! CPU power estimate for machines without a readable energy counter (VMs, containers).
//!
//! Model (CodeCarbon's `cpu_load` mode with its 10% floor, linear in load; sensors.md §7.2 and
//! §7.4): `P = rated_power × (idle_fraction + (1 − idle_fraction) × u)`, with `u` the global CPU
//! utilisation in [0, 1] and `idle_fraction = 0.1`. `rated_power` is the package TDP from a
//! small table, scaled by the logical CPUs this machine sees over the part's threads per
//! package (a 2-vCPU slice of a 64-core part is not charged the whole package), or 4 W per
//! logical CPU when the part is unknown (CodeCarbon's `DEFAULT_POWER_PER_CORE`).
//!
//! This is an **estimate**: provenance `estimated`, and its uncertainty is unknown.

use std::time::Instant;

use serde_json::json;
use sysinfo::{CpuRefreshKind, RefreshKind, System, MINIMUM_CPU_UPDATE_INTERVAL};

use super::{Provenance, Reading, Sensor, SensorError, SourceInfo};
use crate::units::Watts;

/// Fraction of rated power drawn at zero load (CodeCarbon's floor, sensors.md §7.2).
pub const IDLE_FRACTION: f64 = 0.1;
/// Watts per logical CPU when the model is not in [`RATED_POWER_TABLE`] (CodeCarbon's
/// `DEFAULT_POWER_PER_CORE` in `codecarbon/core/cpu.py`, applied per hardware thread).
pub const WATTS_PER_THREAD_DEFAULT: f64 = 4.0;

/// One known CPU part: its TDP, the hardware threads of one package, and where the figures
/// come from.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RatedPart {
    /// Family word that must appear in the model string (`xeon`, `epyc`, `core`, `ryzen`).
    pub family: &'static str,
    /// Part number that must appear as a whole word (`8380`, `7763`, `i9-13900k`).
    pub part: &'static str,
    pub tdp_w: f64,
    pub threads_per_package: u32,
    pub source: &'static str,
}

const INTEL_ARK: &str = "Intel ARK product specification page (ark.intel.com): TDP / Processor Base Power, threads";
const AMD_SPEC: &str = "AMD product specification page (amd.com/en/products): default TDP, threads";

/// TDP and threads per package of common server and desktop parts. Figures are the vendor's
/// own specification pages (Intel ARK "TDP"/"Processor Base Power", AMD "Default TDP"); the
/// exact page is named by `source` and recorded in every result's detail JSON.
#[rustfmt::skip]
pub const RATED_POWER_TABLE: &[RatedPart] = &[
    // Intel Xeon Scalable, 1st-5th generation.
    RatedPart { family: "xeon", part: "6148", tdp_w: 150.0, threads_per_package: 40, source: INTEL_ARK },
    RatedPart { family: "xeon", part: "6248", tdp_w: 150.0, threads_per_package: 40, source: INTEL_ARK },
    RatedPart { family: "xeon", part: "5218", tdp_w: 125.0, threads_per_package: 32, source: INTEL_ARK },
    RatedPart { family: "xeon", part: "6338", tdp_w: 205.0, threads_per_package: 64, source: INTEL_ARK },
    RatedPart { family: "xeon", part: "8358", tdp_w: 250.0, threads_per_package: 64, source: INTEL_ARK },
    RatedPart { family: "xeon", part: "8380", tdp_w: 270.0, threads_per_package: 80, source: INTEL_ARK },
    RatedPart { family: "xeon", part: "8480+", tdp_w: 350.0, threads_per_package: 112, source: INTEL_ARK },
    RatedPart { family: "xeon", part: "8592+", tdp_w: 350.0, threads_per_package: 128, source: INTEL_ARK },
    // AMD EPYC 7002 (Rome), 7003 (Milan), 9004 (Genoa / Bergamo).
    RatedPart { family: "epyc", part: "7452", tdp_w: 155.0, threads_per_package: 64, source: AMD_SPEC },
    RatedPart { family: "epyc", part: "7742", tdp_w: 225.0, threads_per_package: 128, source: AMD_SPEC },
    RatedPart { family: "epyc", part: "7543", tdp_w: 225.0, threads_per_package: 64, source: AMD_SPEC },
    RatedPart { family: "epyc", part: "7713", tdp_w: 225.0, threads_per_package: 128, source: AMD_SPEC },
    RatedPart { family: "epyc", part: "7763", tdp_w: 280.0, threads_per_package: 128, source: AMD_SPEC },
    RatedPart { family: "epyc", part: "9554", tdp_w: 360.0, threads_per_package: 128, source: AMD_SPEC },
    RatedPart { family: "epyc", part: "9654", tdp_w: 360.0, threads_per_package: 192, source: AMD_SPEC },
    RatedPart { family: "epyc", part: "9754", tdp_w: 360.0, threads_per_package: 256, source: AMD_SPEC },
    // Desktop parts.
    RatedPart { family: "core", part: "i7-12700k", tdp_w: 125.0, threads_per_package: 20, source: INTEL_ARK },
    RatedPart { family: "core", part: "i9-13900k", tdp_w: 125.0, threads_per_package: 32, source: INTEL_ARK },
    RatedPart { family: "ryzen", part: "5800x", tdp_w: 105.0, threads_per_package: 16, source: AMD_SPEC },
    RatedPart { family: "ryzen", part: "5950x", tdp_w: 105.0, threads_per_package: 32, source: AMD_SPEC },
    RatedPart { family: "ryzen", part: "7950x", tdp_w: 170.0, threads_per_package: 32, source: AMD_SPEC },
];

/// Lower-cases and strips `(R)`, `(TM)` so `Intel(R) Xeon(R) Platinum 8380 CPU` matches.
fn normalise_model(model: &str) -> String {
    model.to_ascii_lowercase().replace("(r)", " ").replace("(tm)", " ")
}

/// The table row whose family word and part number both appear in `model`, if any.
pub fn lookup_part(model: &str) -> Option<&'static RatedPart> {
    let norm = normalise_model(model);
    let words: Vec<&str> = norm.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()).collect();
    RATED_POWER_TABLE.iter().find(|p| words.contains(&p.family) && words.contains(&p.part))
}

/// The rated power the estimate scales, and how it was obtained.
#[derive(Clone, Debug, PartialEq)]
pub struct RatedPower {
    pub watts: f64,
    /// How `watts` was obtained, for the detail JSON: a table row, the per-thread default, or
    /// a figure the user supplied.
    pub basis: serde_json::Value,
}

impl RatedPower {
    /// Rated power for `model` seen with `logical_cpus` logical CPUs (see the module docs).
    pub fn for_cpu(model: &str, logical_cpus: usize) -> RatedPower {
        let logical = logical_cpus.max(1) as f64;
        match lookup_part(model) {
            Some(p) => RatedPower {
                watts: p.tdp_w * logical / p.threads_per_package as f64,
                basis: json!({
                    "method": "table",
                    "part": p.part,
                    "tdp_w": p.tdp_w,
                    "threads_per_package": p.threads_per_package,
                    "logical_cpus": logical_cpus,
                    "formula": "tdp_w * logical_cpus / threads_per_package",
                    "source": p.source,
                }),
            },
            None => RatedPower {
                watts: WATTS_PER_THREAD_DEFAULT * logical,
                basis: json!({
                    "method": "per-thread-default",
                    "watts_per_thread": WATTS_PER_THREAD_DEFAULT,
                    "logical_cpus": logical_cpus,
                    "formula": "watts_per_thread * logical_cpus",
                    "source": "CodeCarbon DEFAULT_POWER_PER_CORE (codecarbon/core/cpu.py); \
                               model not in effbench's rated-power table",
                }),
            },
        }
    }

    /// A rated power the user supplied (e.g. from the machine's datasheet).
    pub fn user(watts: f64, source: &str) -> RatedPower {
        RatedPower { watts, basis: json!({ "method": "user", "source": source }) }
    }
}

/// Where the estimate's utilisation comes from. Returns the CPU load as a fraction in [0, 1].
///
/// Contract: called once per meter sample from the meter thread (`Send`, never concurrently);
/// must be cheap and must not block. Closures `FnMut() -> Result<f64, String>` implement it, so
/// tests can script utilisation.
pub trait UtilisationSource: Send {
    fn utilisation(&mut self) -> Result<f64, String>;
}

impl<F: FnMut() -> Result<f64, String> + Send> UtilisationSource for F {
    fn utilisation(&mut self) -> Result<f64, String> {
        self()
    }
}

/// Global CPU utilisation of the whole machine from sysinfo (all processes, not only ours:
/// CodeCarbon's "machine" mode). sysinfo needs at least `MINIMUM_CPU_UPDATE_INTERVAL` (200 ms
/// on Linux) between refreshes for a meaningful value, so faster calls return the cached value
/// and cost nothing; hence the estimate's `update_period_s` of 0.2 s.
pub struct SysinfoUtilisation {
    system: System,
    last_refresh: Instant,
    cached: f64,
}

impl SysinfoUtilisation {
    pub fn new() -> Self {
        let system = System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
        let mut this = SysinfoUtilisation { system, last_refresh: Instant::now(), cached: 0.0 };
        // The first refresh sets sysinfo's baseline; usage is meaningful from the next one.
        this.system.refresh_cpu_usage();
        this
    }

    /// Logical CPUs the utilisation is averaged over.
    pub fn logical_cpus(&self) -> usize {
        self.system.cpus().len()
    }

    /// The CPU model string (first CPU's brand), trimmed.
    pub fn cpu_model(&self) -> String {
        self.system.cpus().first().map(|c| c.brand().trim().to_string()).unwrap_or_default()
    }
}

impl Default for SysinfoUtilisation {
    fn default() -> Self {
        Self::new()
    }
}

impl UtilisationSource for SysinfoUtilisation {
    fn utilisation(&mut self) -> Result<f64, String> {
        if self.last_refresh.elapsed() >= MINIMUM_CPU_UPDATE_INTERVAL {
            self.system.refresh_cpu_usage();
            self.last_refresh = Instant::now();
            self.cached = f64::from(self.system.global_cpu_usage()) / 100.0;
        }
        Ok(self.cached)
    }
}

/// The CPU power estimate as a [`Sensor`]: domain `cpu`, kind `estimate`, provenance
/// `estimated`, [`Reading::Power`] on every read. Cost per read: one utilisation query (a
/// `/proc/stat` parse at most every 200 ms with [`SysinfoUtilisation`]).
pub struct CpuEstimate {
    utilisation: Box<dyn UtilisationSource>,
    rated: RatedPower,
    idle_fraction: f64,
    cpu_model: String,
    logical_cpus: usize,
    update_period_s: f64,
}

impl CpuEstimate {
    /// An estimate with an injected utilisation source, e.g. a closure in tests.
    pub fn new(
        utilisation: Box<dyn UtilisationSource>,
        cpu_model: &str,
        logical_cpus: usize,
        rated: RatedPower,
    ) -> CpuEstimate {
        CpuEstimate {
            utilisation,
            rated,
            idle_fraction: IDLE_FRACTION,
            cpu_model: cpu_model.to_string(),
            logical_cpus,
            update_period_s: 0.0,
        }
    }

    /// The estimate for this machine: model and logical CPUs from sysinfo, rated power from the
    /// table or the per-thread default.
    pub fn from_system() -> CpuEstimate {
        let util = SysinfoUtilisation::new();
        let model = util.cpu_model();
        let logical = util.logical_cpus();
        let rated = RatedPower::for_cpu(&model, logical);
        let mut est = CpuEstimate::new(Box::new(util), &model, logical, rated);
        est.update_period_s = MINIMUM_CPU_UPDATE_INTERVAL.as_secs_f64();
        est
    }

    /// The modelled power at utilisation `u` (clamped to [0, 1]).
    pub fn power_at(&self, u: f64) -> Watts {
        let u = u.clamp(0.0, 1.0);
        Watts(self.rated.watts * (self.idle_fraction + (1.0 - self.idle_fraction) * u))
    }

    pub fn rated_power(&self) -> &RatedPower {
        &self.rated
    }
}

impl Sensor for CpuEstimate {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            id: "estimate:cpu".to_string(),
            kind: "estimate".to_string(),
            domain: "cpu".to_string(),
            provenance: Provenance::Estimated,
            sample_hz: 0.0,
            update_period_s: self.update_period_s,
            detail: json!({
                "model": "cpu-tdp-util-linear",
                "formula": "rated_power_w * (idle_fraction + (1 - idle_fraction) * utilisation)",
                "cpu_model": self.cpu_model,
                "logical_cpus": self.logical_cpus,
                "rated_power_w": self.rated.watts,
                "rated_power": self.rated.basis,
                "idle_fraction": self.idle_fraction,
                "idle_fraction_source": "CodeCarbon cpu_load mode floor of 10% of TDP \
                                         (codecarbon/core/cpu.py)",
                "utilisation": "global CPU usage of the whole machine (sysinfo)",
                "uncertainty": "unknown",
            }),
        }
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        let u = self.utilisation.utilisation().map_err(|message| SensorError::Transient {
            source_id: "estimate:cpu".to_string(),
            message: format!("cannot read CPU utilisation: {message}"),
        })?;
        if !u.is_finite() {
            return Err(SensorError::OutOfRange {
                source_id: "estimate:cpu".to_string(),
                raw: u.to_string(),
                reason: "utilisation must be a fraction in [0, 1]".to_string(),
            });
        }
        Ok(Reading::Power(self.power_at(u)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripted(values: Vec<f64>) -> Box<dyn UtilisationSource> {
        let mut it = values.into_iter();
        Box::new(move || it.next().ok_or_else(|| "script ended".to_string()))
    }

    #[test]
    fn table_lookup_matches_vendor_strings() {
        let p = lookup_part("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz").unwrap();
        assert_eq!((p.tdp_w, p.threads_per_package), (270.0, 80));
        let p = lookup_part("AMD EPYC 7763 64-Core Processor").unwrap();
        assert_eq!(p.tdp_w, 280.0);
        let p = lookup_part("Intel(R) Xeon(R) Platinum 8480+").unwrap();
        assert_eq!(p.part, "8480+");
        let p = lookup_part("13th Gen Intel(R) Core(TM) i9-13900K").unwrap();
        assert_eq!(p.threads_per_package, 32);
        assert!(lookup_part("AMD EPYC").is_none());
        assert!(lookup_part("AMD EPYC 7763X").is_none());
        assert!(lookup_part("Intel Core 7763").is_none(), "family must match too");
    }

    #[test]
    fn rated_power_scales_with_visible_threads() {
        // A 2-vCPU slice of a 128-thread EPYC 7763 is charged 2/128 of 280 W.
        let r = RatedPower::for_cpu("AMD EPYC 7763 64-Core Processor", 2);
        assert!((r.watts - 280.0 * 2.0 / 128.0).abs() < 1e-12);
        assert_eq!(r.basis["method"], "table");
        // Two sockets of 8380 visible: twice the TDP.
        let r = RatedPower::for_cpu("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", 160);
        assert!((r.watts - 540.0).abs() < 1e-9);
        // Unknown model: 4 W per thread.
        let r = RatedPower::for_cpu("AMD EPYC", 2);
        assert_eq!(r.watts, 8.0);
        assert_eq!(r.basis["method"], "per-thread-default");
    }

    #[test]
    fn watts_follow_the_formula_exactly() {
        let rated = RatedPower::user(100.0, "test");
        let mut est = CpuEstimate::new(scripted(vec![0.0, 0.5, 1.0, 1.7]), "x", 4, rated);
        let mut watts = Vec::new();
        for _ in 0..4 {
            match est.read().unwrap() {
                Reading::Power(w) => watts.push(w.0),
                other => panic!("estimate must report power, got {other:?}"),
            }
        }
        // 100 × (0.1 + 0.9 u); utilisation above 1 is clamped.
        let expected = [10.0, 55.0, 100.0, 100.0];
        assert_eq!(watts.len(), expected.len());
        for (w, e) in watts.iter().zip(expected) {
            assert!((w - e).abs() < 1e-9, "{watts:?} vs {expected:?}");
        }
        assert!(matches!(est.read(), Err(SensorError::Transient { .. })));
    }

    #[test]
    fn nan_utilisation_is_an_error() {
        let mut est = CpuEstimate::new(scripted(vec![f64::NAN]), "x", 1, RatedPower::user(1.0, "t"));
        assert!(matches!(est.read(), Err(SensorError::OutOfRange { .. })));
    }

    #[test]
    fn info_records_model_and_parameters() {
        let rated = RatedPower::for_cpu("AMD EPYC", 2);
        let est = CpuEstimate::new(scripted(vec![]), "AMD EPYC", 2, rated);
        let info = est.info();
        assert_eq!(
            (info.kind.as_str(), info.domain.as_str(), info.provenance),
            ("estimate", "cpu", Provenance::Estimated)
        );
        assert_eq!(info.detail["cpu_model"], "AMD EPYC");
        assert_eq!(info.detail["rated_power_w"], 8.0);
        assert_eq!(info.detail["idle_fraction"], 0.1);
        assert!(info.detail["rated_power"]["source"].as_str().unwrap().contains("CodeCarbon"));
    }

    #[test]
    fn system_estimate_reads_a_plausible_power() {
        let mut est = CpuEstimate::from_system();
        let rated = est.rated_power().watts;
        assert!(rated > 0.0);
        match est.read().unwrap() {
            Reading::Power(w) => assert!(w.0 >= 0.1 * rated - 1e-9 && w.0 <= rated + 1e-9),
            other => panic!("expected power, got {other:?}"),
        }
    }
}
