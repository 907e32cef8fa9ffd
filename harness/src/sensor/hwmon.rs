//! Energy and power from Linux hwmon chips (`Documentation/hwmon/sysfs-interface.rst`;
//! sensors.md §2): `$root/class/hwmon/hwmonN/` with a `name`, a `device` link to the bus
//! device, and numbered attributes.
//!
//! Per chip, ONE channel is metered, because the channels of one chip usually overlap (xe:
//! `energy1` card vs `energy2` package; `amd_energy`: socket vs cores):
//! - `energyN_input` (µJ counter) is preferred: the lowest-numbered one, except that for CPU
//!   energy drivers (`amd_energy`, `zenergy`) every channel labelled `Esocket*` is metered
//!   (sockets add up, cores are parts of them). Counters report `wrap_at = 0`: the drivers
//!   that expose `energyN_input` (i915, xe, amd_energy) extend their 32-bit registers to 64
//!   bits in the kernel, so a step back is a reset, which the meter drops with a warning.
//! - else `powerN_input` (µW, instantaneous), else `powerN_average` (µW, averaged over
//!   `powerN_average_interval` when the file exists): [`Reading::Power`], integrated by the
//!   meter.
//!
//! The other channels are listed in `detail.not_summed`.
//!
//! Domains (the meter sums sources that share one):
//! - `gpu:N` for GPU drivers (`amdgpu`, `i915`, `xe`; i915/xe register hwmon only for discrete
//!   cards), N counting those chips in discovery order after the GPUs NVML numbers (NVIDIA's
//!   driver registers no hwmon chip, so on a machine with both the NVIDIA GPUs are `gpu:0..`,
//!   as CUDA counts them, and hwmon's GPUs follow: no two GPUs ever share a domain);
//! - `npu:N` for AI accelerators whose driver exposes hwmon power: `qaic` (Qualcomm Cloud AI
//!   100, downstream driver), `habanalabs` (Gaudi), Tenstorrent (`wormhole`, `grayskull`,
//!   `blackhole`; the tt-kmd names are an assumption, not checked on hardware);
//! - `hwmon:<name>` for anything else.
//!
//! Per-GT chips (`i915_gtN`, `xe_gtN`) are parts of their card and are listed as not summed.
//! Chips with no energy or power attribute (coretemp, k10temp, nvme, ...) are
//! [`Status::Unavailable`].
//!
//! Discovery order (and so N): chips sorted by bus address, then name, then `hwmonN`; hwmonN
//! numbers change across boots, bus addresses do not. Ids are `hwmon:<name>@<bus address>`
//! (`hwmon:amdgpu@0000:03:00.0`), or `@hwmonN` for a chip without a `device` link.
//!
//! Caveats recorded in `detail.note`: on an APU, amdgpu's `power1_average` includes the CPU;
//! `amd_energy`/`zenergy` read the same RAPL MSRs as [`super::rapl`], so meter only one of
//! the two for the CPU.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::sysfs::{parse_u64, read_trimmed, status_for, Attr, Fs};
use super::{Candidate, Provenance, Reading, Sensor, SensorError, SourceInfo, Status};
use crate::units::Watts;

const GPU_NAMES: &[&str] = &["amdgpu", "i915", "xe"];
const NPU_NAMES: &[&str] = &["qaic", "habanalabs", "wormhole", "grayskull", "blackhole"];
const CPU_ENERGY_NAMES: &[&str] = &["amd_energy", "zenergy"];

/// Which attribute a channel reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attribute {
    /// `energyN_input`, µJ, cumulative.
    Energy,
    /// `powerN_input`, µW, instantaneous.
    PowerInput,
    /// `powerN_average`, µW, averaged by the driver.
    PowerAverage,
}

impl Attribute {
    fn file(self, n: u32) -> String {
        match self {
            Attribute::Energy => format!("energy{n}_input"),
            Attribute::PowerInput => format!("power{n}_input"),
            Attribute::PowerAverage => format!("power{n}_average"),
        }
    }

    fn parse(file: &str) -> Option<(Attribute, u32)> {
        let (attr, rest) = if let Some(r) = file.strip_prefix("energy") {
            (Attribute::Energy, r.strip_suffix("_input")?)
        } else if let Some(r) = file.strip_prefix("power").and_then(|r| r.strip_suffix("_input")) {
            (Attribute::PowerInput, r)
        } else {
            (Attribute::PowerAverage, file.strip_prefix("power")?.strip_suffix("_average")?)
        };
        Some((attr, rest.parse().ok()?))
    }

    fn expected(self) -> &'static str {
        match self {
            Attribute::Energy => "an integer count of microjoules",
            _ => "an integer number of microwatts",
        }
    }
}

/// One metered hwmon channel. Cost per read: one small sysfs read.
pub struct HwmonSensor {
    id: String,
    domain: String,
    attribute: Attribute,
    fs: Arc<dyn Fs>,
    file: Attr,
    /// The permission fix, built once so that `read` does not allocate.
    hint: String,
    update_period_s: f64,
    detail: serde_json::Value,
}

impl Sensor for HwmonSensor {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            id: self.id.clone(),
            kind: "hwmon".to_string(),
            domain: self.domain.clone(),
            provenance: Provenance::Measured,
            sample_hz: 0.0,
            update_period_s: self.update_period_s,
            detail: self.detail.clone(),
        }
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        let raw = self.file.read_u64(self.fs.as_ref(), &self.id, self.attribute.expected(), &self.hint)?;
        Ok(match self.attribute {
            Attribute::Energy => Reading::Counter { raw, wrap_at: 0, joules_per_unit: 1e-6 },
            _ => Reading::Power(Watts(raw as f64 * 1e-6)),
        })
    }
}

/// What to do when a hwmon attribute is not readable.
pub fn permission_fix(file: &Path) -> String {
    let attr = file.file_name().and_then(|f| f.to_str()).unwrap_or("energy1_input");
    format!(
        "{} is not readable by this user (hwmon attributes should be world-readable, but this \
         driver restricts it). Run effbench as root, or have an administrator run \
         `sudo chmod o+r {}` (until reboot) or add the udev rule \
         `ACTION==\"add\", SUBSYSTEM==\"hwmon\", RUN+=\"/bin/chmod o+r /sys%p/{attr}\"`",
        file.display(),
        file.display()
    )
}

/// A hwmon chip as found on disk.
struct Chip {
    entry: String,
    dir: PathBuf,
    attr_dir: PathBuf,
    name: String,
    bus: Option<String>,
    files: Vec<String>,
}

fn unavailable(id: String, domains: Vec<String>, reason: String, detail: serde_json::Value) -> Candidate {
    Candidate { kind: "hwmon", id, domains, status: Status::Unavailable { reason }, detail, sensors: Vec::new() }
}

/// Finds every hwmon chip under `root/class/hwmon` (see the module docs for the policy); GPU
/// domains start at `gpu:{first_gpu}`. A missing class directory gives one `hwmon` candidate
/// with [`Status::Unavailable`].
pub fn discover(root: &Path, fs: Arc<dyn Fs>, first_gpu: u32) -> Vec<Candidate> {
    let class = root.join("class/hwmon");
    let entries = match fs.read_dir(&class) {
        Ok(e) => e,
        Err(e) => {
            let reason = format!("cannot list {}: {e} (not Linux, or sysfs is not mounted)", class.display());
            return vec![unavailable("hwmon".into(), Vec::new(), reason, json!({ "path": class }))];
        }
    };
    let mut chips = Vec::new();
    let mut out = Vec::new();
    for dir in entries {
        let entry = dir.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
        // Old drivers put `name` and the attributes on the parent device instead.
        let (attr_dir, name) = match read_trimmed(fs.as_ref(), &dir.join("name")) {
            Ok(n) => (dir.clone(), n),
            Err(e) => match read_trimmed(fs.as_ref(), &dir.join("device/name")) {
                Ok(n) => (dir.join("device"), n),
                Err(_) => {
                    let reason = format!("cannot read {}: {e}", dir.join("name").display());
                    out.push(unavailable(format!("hwmon:{entry}"), Vec::new(), reason, json!({ "path": dir })));
                    continue;
                }
            },
        };
        let bus = fs
            .canonicalize(&dir.join("device"))
            .ok()
            .and_then(|p| p.file_name().and_then(|f| f.to_str()).map(str::to_string));
        let files = fs
            .read_dir(&attr_dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.file_name().and_then(|f| f.to_str()).map(str::to_string))
            .collect();
        chips.push(Chip { entry, dir, attr_dir, name, bus, files });
    }
    chips.sort_by(|a, b| {
        (a.bus.is_none(), &a.bus, &a.name, &a.entry).cmp(&(b.bus.is_none(), &b.bus, &b.name, &b.entry))
    });

    let (mut gpus, mut npus) = (first_gpu, 0);
    for chip in &chips {
        let base = format!("hwmon:{}@{}", chip.name, chip.bus.as_deref().unwrap_or(&chip.entry));
        let mut id = base.clone();
        let mut k = 2;
        while out.iter().any(|c: &Candidate| c.id == id) {
            id = format!("{base}#{k}");
            k += 1;
        }
        let candidate = chip_candidate(chip, id, &fs, &mut gpus, &mut npus);
        out.push(candidate);
    }
    out
}

fn chip_candidate(chip: &Chip, id: String, fs: &Arc<dyn Fs>, gpus: &mut u32, npus: &mut u32) -> Candidate {
    let mut channels: Vec<(Attribute, u32)> = chip.files.iter().filter_map(|f| Attribute::parse(f)).collect();
    channels.sort();
    let label = |a: Attribute, n: u32| {
        let prefix = if a == Attribute::Energy { "energy" } else { "power" };
        read_trimmed(fs.as_ref(), &chip.attr_dir.join(format!("{prefix}{n}_label"))).ok()
    };
    let mut detail = json!({
        "name": chip.name,
        "bus_address": chip.bus,
        "hwmon": chip.entry,
        "path": chip.dir,
        "channels": channels.iter().map(|&(a, n)| json!({ "file": a.file(n), "label": label(a, n) })).collect::<Vec<_>>(),
    });
    let name = chip.name.as_str();
    if channels.is_empty() {
        let reason = format!(
            "{name} has no energyN_input, powerN_input or powerN_average (a temperature, fan or \
             voltage chip); nothing to meter"
        );
        return unavailable(id, Vec::new(), reason, detail);
    }
    let part_of_card = ["i915_gt", "xe_gt"].iter().any(|p| name.starts_with(p));
    if part_of_card {
        let reason = "recorded, not summed: per-GT energy is part of the card's total, metered from the \
                      i915/xe chip of the same device"
            .to_string();
        detail["summed"] = json!(false);
        return unavailable(id, Vec::new(), reason, detail);
    }

    let best = channels[0].0;
    let mut metered: Vec<(Attribute, u32)> = channels.iter().copied().filter(|c| c.0 == best).take(1).collect();
    if best == Attribute::Energy && CPU_ENERGY_NAMES.contains(&name) {
        let sockets: Vec<_> = channels
            .iter()
            .copied()
            .filter(|&(a, n)| a == Attribute::Energy && label(a, n).is_some_and(|l| l.starts_with("Esocket")))
            .collect();
        if !sockets.is_empty() {
            metered = sockets;
        }
    }
    let not_summed: Vec<String> = channels.iter().filter(|c| !metered.contains(c)).map(|&(a, n)| a.file(n)).collect();
    detail["metered"] = json!(metered.iter().map(|&(a, n)| a.file(n)).collect::<Vec<_>>());
    detail["not_summed"] = json!(not_summed);

    let domain = if GPU_NAMES.contains(&name) {
        *gpus += 1;
        format!("gpu:{}", *gpus - 1)
    } else if NPU_NAMES.contains(&name) {
        *npus += 1;
        format!("npu:{}", *npus - 1)
    } else {
        format!("hwmon:{name}")
    };
    if best == Attribute::PowerAverage {
        detail["lag_note"] = json!(
            "powerN_average is averaged by the driver or firmware (over powerN_average_interval when \
             that file exists): it lags the true power, so short windows are less accurate"
        );
    }
    if name == "amdgpu" {
        detail["note"] = json!("on an APU, amdgpu's power includes the CPU cores");
    } else if CPU_ENERGY_NAMES.contains(&name) {
        detail["note"] = json!("reads the same RAPL MSRs as the rapl source: meter only one of them for the CPU");
    }

    let chip_period = read_trimmed(fs.as_ref(), &chip.attr_dir.join("update_interval")).ok();
    let mut sensors: Vec<Box<dyn Sensor>> = Vec::new();
    for &(attribute, n) in &metered {
        let sensor_id = if metered.len() == 1 { id.clone() } else { format!("{id}/{}", attribute.file(n)) };
        let path = chip.attr_dir.join(attribute.file(n));
        let mut file = Attr::new(path.clone());
        if let Err(e) = file.read_u64(fs.as_ref(), &sensor_id, attribute.expected(), &permission_fix(&path)) {
            let status = status_for(&e, || permission_fix(&path));
            return Candidate { status, ..unavailable(id, vec![domain], String::new(), detail) };
        }
        let interval = match attribute {
            Attribute::PowerAverage => {
                read_trimmed(fs.as_ref(), &chip.attr_dir.join(format!("power{n}_average_interval"))).ok()
            }
            _ => None,
        };
        let update_period_s = interval
            .or_else(|| chip_period.clone())
            .and_then(|ms| parse_u64(&sensor_id, &path, &ms, "milliseconds").ok())
            .map_or(0.0, |ms| ms as f64 / 1000.0);
        let mut d = detail.clone();
        d["file"] = json!(path);
        sensors.push(Box::new(HwmonSensor {
            id: sensor_id,
            domain: domain.clone(),
            attribute,
            fs: Arc::clone(fs),
            file,
            hint: permission_fix(&path),
            update_period_s,
            detail: d,
        }));
    }
    Candidate { kind: "hwmon", id, domains: vec![domain], status: Status::Ok, detail, sensors }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::sysfs::testing::{FakeTree, Fault, FaultFs};
    use super::super::sysfs::RealFs;
    use super::*;
    use crate::meter::Meter;

    fn real() -> Arc<dyn Fs> {
        Arc::new(RealFs)
    }

    fn ids(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| c.id.as_str()).collect()
    }

    /// An amdgpu (power only), an Intel discrete GPU with energy and power, a qaic NPU, a
    /// coretemp chip, and a second amdgpu on a lower bus number but a higher hwmonN.
    fn machine(t: &FakeTree) {
        let amd = t.hwmon(3, "amdgpu", Some("0000:03:00.0")).unwrap();
        t.write(amd.join("power1_average"), "45000000\n").unwrap();
        t.write(amd.join("power1_input"), "50000000\n").unwrap();
        t.write(amd.join("temp1_input"), "40000\n").unwrap();
        let i915 = t.hwmon(1, "i915", Some("0000:04:00.0")).unwrap();
        t.write(i915.join("energy1_input"), "123456789\n").unwrap();
        t.write(i915.join("power1_max"), "150000000\n").unwrap();
        t.write(i915.join("power1_input"), "20000000\n").unwrap();
        let gt = t.hwmon(5, "i915_gt0", Some("0000:04:00.0")).unwrap();
        t.write(gt.join("energy1_input"), "1000\n").unwrap();
        let qaic = t.hwmon(2, "qaic", Some("0000:81:00.0")).unwrap();
        t.write(qaic.join("power1_input"), "75000000\n").unwrap();
        let core = t.hwmon(0, "coretemp", None).unwrap();
        t.write(core.join("temp1_input"), "45000\n").unwrap();
        let amd2 = t.hwmon(4, "amdgpu", Some("0000:02:00.0")).unwrap();
        t.write(amd2.join("power1_average"), "1000000\n").unwrap();
    }

    #[test]
    fn discovers_chips_domains_and_bus_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let t = FakeTree::new(dir.path());
        machine(&t);
        let c = discover(dir.path(), real(), 0);
        assert_eq!(
            ids(&c),
            vec![
                "hwmon:amdgpu@0000:02:00.0",
                "hwmon:amdgpu@0000:03:00.0",
                "hwmon:i915@0000:04:00.0",
                "hwmon:i915_gt0@0000:04:00.0",
                "hwmon:qaic@0000:81:00.0",
                "hwmon:coretemp@hwmon0",
            ]
        );
        let domains: Vec<String> = c.iter().map(|c| c.domains.join(",")).collect();
        assert_eq!(domains, vec!["gpu:0", "gpu:1", "gpu:2", "", "npu:0", ""]);
        assert_eq!(c[1].detail["bus_address"], "0000:03:00.0");
        assert_eq!(c[1].detail["name"], "amdgpu");
        assert_eq!(c[1].sensors[0].info().id, "hwmon:amdgpu@0000:03:00.0");
        assert!(matches!(&c[3].status, Status::Unavailable { reason } if reason.contains("not summed")));
        assert!(c[3].sensors.is_empty());
        assert!(matches!(&c[5].status, Status::Unavailable { reason } if reason.contains("coretemp")));
        // Beside two NVIDIA GPUs (NVML's gpu:0 and gpu:1) hwmon's GPUs follow them, and the
        // sensors carry the same domain as their candidates.
        let c = discover(dir.path(), real(), 2);
        let domains: Vec<String> = c.iter().map(|c| c.domains.join(",")).collect();
        assert_eq!(domains, vec!["gpu:2", "gpu:3", "gpu:4", "", "npu:0", ""]);
        assert_eq!(c[0].sensors[0].info().domain, "gpu:2");
    }

    #[test]
    fn energy_is_preferred_over_power_and_input_over_average() {
        let dir = tempfile::tempdir().unwrap();
        let t = FakeTree::new(dir.path());
        machine(&t);
        let mut c = discover(dir.path(), real(), 0);
        let mut i915 = c.remove(2);
        assert_eq!(i915.detail["metered"], json!(["energy1_input"]));
        assert_eq!(i915.detail["not_summed"], json!(["power1_input"]));
        let r = i915.sensors[0].read().unwrap();
        assert_eq!(r, Reading::Counter { raw: 123_456_789, wrap_at: 0, joules_per_unit: 1e-6 });
        let mut amd = c.remove(1);
        assert_eq!(amd.detail["metered"], json!(["power1_input"]));
        assert_eq!(amd.sensors[0].read().unwrap(), Reading::Power(Watts(50.0)));
        let mut amd_avg = c.remove(0);
        assert_eq!(amd_avg.detail["metered"], json!(["power1_average"]));
        assert!(amd_avg.detail["lag_note"].is_string());
        assert_eq!(amd_avg.sensors[0].read().unwrap(), Reading::Power(Watts(1.0)));
    }

    #[test]
    fn cpu_energy_driver_meters_sockets_only() {
        let dir = tempfile::tempdir().unwrap();
        let t = FakeTree::new(dir.path());
        let h = t.hwmon(0, "zenergy", None).unwrap();
        for (n, label) in [(1, "Ecore000"), (2, "Ecore001"), (3, "Esocket0"), (4, "Esocket1")] {
            t.write(h.join(format!("energy{n}_input")), &format!("{}\n", n * 1000)).unwrap();
            t.write(h.join(format!("energy{n}_label")), &format!("{label}\n")).unwrap();
        }
        let c = discover(dir.path(), real(), 0);
        assert_eq!(c[0].detail["metered"], json!(["energy3_input", "energy4_input"]));
        let sensor_ids: Vec<String> = c[0].sensors.iter().map(|s| s.info().id).collect();
        assert_eq!(sensor_ids, vec!["hwmon:zenergy@hwmon0/energy3_input", "hwmon:zenergy@hwmon0/energy4_input"]);
        assert_eq!(c[0].domains, vec!["hwmon:zenergy"]);
    }

    #[test]
    fn permission_denied_transient_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let t = FakeTree::new(dir.path());
        let h = t.hwmon(0, "i915", Some("0000:04:00.0")).unwrap();
        t.write(h.join("energy1_input"), "5\n").unwrap();
        let file = h.join("energy1_input");
        let fs = Arc::new(FaultFs::real());
        fs.set(&file, Fault::PermissionDenied);
        let c = discover(dir.path(), fs.clone(), 0);
        let Status::PermissionDenied { fix } = &c[0].status else { panic!("{:?}", c[0].status) };
        assert!(fix.contains(&file.display().to_string()) && fix.contains("chmod o+r"), "{fix}");
        assert!(c[0].sensors.is_empty());

        fs.clear(&file);
        let mut s = discover(dir.path(), fs.clone(), 0).remove(0).sensors.remove(0);
        fs.set(&file, Fault::Errno(61)); // ENODATA: present, no valid value now
        assert!(matches!(s.read(), Err(SensorError::Transient { .. })));
        fs.set(&file, Fault::Content("n/a\n".into()));
        match s.read() {
            Err(SensorError::Parse { path, raw, .. }) => assert_eq!((path, raw.as_str()), (file.clone(), "n/a\n")),
            other => panic!("{other:?}"),
        }
        fs.set(&file, Fault::Missing);
        assert!(matches!(s.read(), Err(SensorError::Io { .. })));
    }

    #[test]
    fn missing_hwmon_class_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let c = discover(dir.path(), real(), 0);
        assert_eq!(ids(&c), vec!["hwmon"]);
        assert!(matches!(&c[0].status, Status::Unavailable { reason } if reason.contains("class/hwmon")));
    }

    /// Scripted energy and power through a real meter: the counter's deltas and the
    /// trapezoid of the power values land in their own gpu domains.
    #[test]
    fn scripted_values_through_the_meter() {
        let dir = tempfile::tempdir().unwrap();
        let t = FakeTree::new(dir.path());
        let i915 = t.hwmon(0, "i915", Some("0000:04:00.0")).unwrap();
        t.write(i915.join("energy1_input"), "1000000\n").unwrap();
        let sensors: Vec<Box<dyn Sensor>> =
            discover(dir.path(), real(), 0).into_iter().flat_map(|c| c.sensors).collect();
        let meter = Meter::start(sensors, 1.0).unwrap();
        let begin = meter.mark();
        for uj in [1_500_000u64, 4_000_000, 4_000_000, 6_250_000] {
            t.write(i915.join("energy1_input"), &format!("{uj}\n")).unwrap();
            let _ = meter.mark();
        }
        std::thread::sleep(Duration::from_millis(2));
        let w = meter.window(&begin, &meter.mark());
        assert!((w.by_domain["gpu:0"].0 - 5.25).abs() < 1e-9, "{w:?}");
        assert!(w.warnings.is_empty(), "{:?}", w.warnings);

        // A reset (the driver reloaded): the step back adds nothing and is a warning naming
        // the source; counting resumes from the new value.
        let begin = meter.mark();
        t.write(i915.join("energy1_input"), "1000\n").unwrap();
        let _ = meter.mark();
        t.write(i915.join("energy1_input"), "501000\n").unwrap();
        let w = meter.window(&begin, &meter.mark());
        assert!((w.by_domain["gpu:0"].0 - 0.5).abs() < 1e-9, "{w:?}");
        assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
        assert!(w.warnings[0].contains("hwmon:i915@0000:04:00.0") && w.warnings[0].contains("reset"));
    }

    #[test]
    fn update_period_comes_from_the_averaging_interval() {
        let dir = tempfile::tempdir().unwrap();
        let t = FakeTree::new(dir.path());
        let h = t.hwmon(0, "amdgpu", Some("0000:03:00.0")).unwrap();
        t.write(h.join("power1_average"), "1000000\n").unwrap();
        t.write(h.join("power1_average_interval"), "1000\n").unwrap();
        t.write(h.join("update_interval"), "100\n").unwrap();
        let c = discover(dir.path(), real(), 0);
        assert_eq!(c[0].sensors[0].info().update_period_s, 1.0);
        let i = t.hwmon(1, "i915", Some("0000:04:00.0")).unwrap();
        t.write(i.join("energy1_input"), "1\n").unwrap();
        t.write(i.join("update_interval"), "100\n").unwrap();
        let c = discover(dir.path(), real(), 0);
        assert_eq!(c[1].sensors[0].info().update_period_s, 0.1);
    }
}
