//! Intel and AMD RAPL energy counters through the Linux powercap sysfs tree
//! (`Documentation/power/powercap/powercap.rst`, `drivers/powercap/powercap_sys.c`,
//! `drivers/powercap/intel_rapl_common.c`; sensors.md §1). AMD Zen parts (kernel 5.11+) use
//! the same `intel-rapl` tree.
//!
//! Discovery lists `$root/class/powercap/`, where the kernel puts every zone and subzone flat:
//! `intel-rapl:0` (package), `intel-rapl:0:2` (its subzone), `intel-rapl-mmio:0`, ... The part
//! after the control type is a `:`-separated list of **hexadecimal** ids (`intel-rapl:a` is the
//! eleventh zone). A zone is identified by its `name` file, never by its index.
//!
//! What is summed into the run's energy (the meter sums sources of one domain):
//! - `package-N` / `package-N-die-D` → domain `cpu`, metered (packages and dies add up);
//! - `dram` → domain `dram`, metered (whether DRAM is inside the package varies by platform,
//!   sensors.md §1.1, so it is its own domain);
//! - `core`, `uncore` are parts of their package and `psys` covers the package, DRAM and more:
//!   they are listed as [`Status::Unavailable`] candidates whose reason says "recorded, not
//!   summed" and carry no sensor, so they can never be added to `cpu`.
//!
//! Duplicate trees: several control types can expose the same package (`intel-rapl` over MSRs,
//! `intel-rapl-mmio`, `intel-rapl-tpmi`). Zones are keyed by (package name, domain name); one
//! candidate per key, preferring `intel-rapl`, then `-tpmi`, then `-mmio`; the others are listed
//! under `detail.duplicates`.
//!
//! Readings: `energy_uj` as a raw counter in µJ with `wrap_at = max_energy_range_uj + 1`: the
//! kernel shows the 32-bit hardware register scaled, so the value runs `0..=max_energy_range_uj`
//! and restarts at 0 (§1.4); the true modulus is one hardware unit (≈15-61 µJ) above the max,
//! an error of at most that much per wrap. The meter does the wrap arithmetic.
//!
//! Wrap or reset: `powercap.rst` defines `energy_uj` as a counter that only a write of 0 (or a
//! reboot/resume) resets, with range `max_energy_range_uj`, so a step back is either one wrap
//! or a reset/bad reading. Each zone states a **power ceiling** ([`Sensor::power_ceiling`]):
//! three times its largest `constraint_*_max_power_uw` (the most a power limit may be set to;
//! short bursts run above the long-term limits, hence the margin), or 2 kW where no constraint
//! states one (no CPU package or DRAM domain draws that). A step back whose wrap would mean
//! more than the ceiling over the interval is rejected and the window's energy is unresolved;
//! a gap long enough for one more whole range at the ceiling also leaves it unresolved
//! ([`super::counter::CounterAccumulator`]).
//!
//! A zone that cannot be read: discovery lists every zone; when a metered zone of a domain
//! (`package-N` for `cpu`, `dram`) cannot be read (permission, I/O, bad `max_energy_range_uj`,
//! unreadable `name`) while others of that domain can, the **whole domain is refused**: the
//! readable zones become [`Status::Unavailable`] naming the one that failed, so `cpu` is never
//! "measured" from one socket of two. The run then treats the domain as it treats any
//! unavailable one (the CPU estimate, or `--require-measured` refuses the run).
//!
//! `energy_uj` is root-only since the fix for CVE-2020-8694 (§1.3): the candidate is then
//! [`Status::PermissionDenied`] with the exact fix. The harness never writes to these files.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::sysfs::{read_trimmed, status_for, Attr, Fs};
use super::{Candidate, Provenance, Reading, Sensor, SensorError, SourceInfo, Status};
use crate::units::Watts;

/// RAPL registers update about every millisecond (Intel SDM Vol. 3B §14.9.3).
pub const UPDATE_PERIOD_S: f64 = 0.001;
/// The power ceiling of a zone without a `constraint_*_max_power_uw` (see the module docs).
pub const DEFAULT_CEILING: Watts = Watts(2000.0);
/// The margin over the largest power limit a zone may be set to.
const CEILING_OVER_MAX_LIMIT: f64 = 3.0;
const EXPECTED_UJ: &str = "an integer count of microjoules";

/// One metered RAPL zone (a package or DRAM). Cost per read: one small sysfs read.
pub struct RaplSensor {
    id: String,
    domain: String,
    fs: Arc<dyn Fs>,
    energy: Attr,
    /// The permission fix, built once so that `read` does not allocate.
    hint: String,
    wrap_at: u64,
    ceiling: Watts,
    detail: serde_json::Value,
}

impl Sensor for RaplSensor {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            id: self.id.clone(),
            kind: "rapl".to_string(),
            domain: self.domain.clone(),
            provenance: Provenance::Measured,
            sample_hz: 0.0,
            update_period_s: UPDATE_PERIOD_S,
            detail: self.detail.clone(),
        }
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        let raw = self.energy.read_u64(self.fs.as_ref(), &self.id, EXPECTED_UJ, &self.hint)?;
        Ok(Reading::Counter { raw, wrap_at: self.wrap_at, joules_per_unit: 1e-6 })
    }

    fn power_ceiling(&self) -> Option<Watts> {
        Some(self.ceiling)
    }
}

/// The zone's power ceiling and where it came from: [`CEILING_OVER_MAX_LIMIT`] × the largest
/// readable, non-zero `constraint_N_max_power_uw` (N = 0..=2: long_term, short_term,
/// peak_power), else [`DEFAULT_CEILING`]. Unreadable constraint files are not an error:
/// many zones (DRAM, AMD) have none.
fn ceiling(fs: &dyn Fs, zone: &Path) -> (Watts, String) {
    let largest = (0..=2)
        .filter_map(|n| {
            let path = zone.join(format!("constraint_{n}_max_power_uw"));
            read_trimmed(fs, &path).ok()?.parse::<u64>().ok().filter(|&uw| uw > 0)
        })
        .max();
    match largest {
        Some(uw) => (
            Watts(uw as f64 * 1e-6 * CEILING_OVER_MAX_LIMIT),
            format!("{CEILING_OVER_MAX_LIMIT} x the largest constraint_*_max_power_uw ({uw})"),
        ),
        None => (DEFAULT_CEILING, "default: no constraint_*_max_power_uw".to_string()),
    }
}

/// What to do when `energy_uj` is root-only. Names the file and the command.
pub fn permission_fix(energy_uj: &Path) -> String {
    let all = energy_uj
        .parent()
        .and_then(Path::parent)
        .map(|class| class.join("intel-rapl*/energy_uj").display().to_string())
        .unwrap_or_else(|| "/sys/class/powercap/intel-rapl*/energy_uj".into());
    format!(
        "{} is readable only by root since the fix for CVE-2020-8694 (kernel commit 949dd0104c49). \
         Run effbench as root, or have an administrator grant read access: until reboot with \
         `sudo chmod o+r {all}`; persistently with the udev rule \
         `ACTION==\"add\", SUBSYSTEM==\"powercap\", KERNEL==\"intel-rapl*\", RUN+=\"/bin/chmod o+r /sys%p/energy_uj\"` \
         in /etc/udev/rules.d/99-effbench-rapl.rules. Granting access re-opens that power side \
         channel (PLATYPUS) to every local user",
        energy_uj.display()
    )
}

/// The kinds of RAPL domains (`rapl_domain_names[]` in `intel_rapl_common.c`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Package,
    Dram,
    Core,
    Uncore,
    Psys,
    Other,
}

impl Kind {
    fn of(name: &str) -> Kind {
        match name {
            "dram" => Kind::Dram,
            "core" => Kind::Core,
            "uncore" => Kind::Uncore,
            "psys" => Kind::Psys,
            n if is_package_name(n) => Kind::Package,
            _ => Kind::Other,
        }
    }
}

/// `package-N` or `package-N-die-D` (decimal, as `rapl_add_package` formats them).
fn is_package_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match name.strip_prefix("package-") {
        Some(rest) => match rest.split_once("-die-") {
            Some((p, d)) => digits(p) && digits(d),
            None => digits(rest),
        },
        None => false,
    }
}

/// A zone directory entry: `<control>:<hex>[:<hex>...]`.
#[derive(Clone, Debug)]
struct Zone {
    entry: String,
    control: String,
    ids: Vec<u32>,
    path: PathBuf,
    name: Result<String, String>,
}

impl Zone {
    fn parse(path: PathBuf) -> Option<Zone> {
        let entry = path.file_name()?.to_str()?.to_string();
        let mut parts = entry.split(':');
        let control = parts.next()?.to_string();
        if !control.starts_with("intel-rapl") {
            return None;
        }
        let ids = parts.map(|p| u32::from_str_radix(p, 16).ok()).collect::<Option<Vec<u32>>>()?;
        if ids.is_empty() {
            return None; // the control type itself (`intel-rapl`), not a zone
        }
        Some(Zone { entry, control, ids, path, name: Err(String::new()) })
    }

    fn parent_entry(&self) -> Option<String> {
        let (_, rest) = self.ids.split_last()?;
        if rest.is_empty() {
            return None;
        }
        let ids: Vec<String> = rest.iter().map(|i| format!("{i:x}")).collect();
        Some(format!("{}:{}", self.control, ids.join(":")))
    }

    /// `intel-rapl` first, then TPMI, then MMIO, then anything else (sensors.md §1.1).
    fn preference(&self) -> u8 {
        match self.control.as_str() {
            "intel-rapl" => 0,
            "intel-rapl-tpmi" => 1,
            "intel-rapl-mmio" => 2,
            _ => 3,
        }
    }
}

const CONTAINER_HINT: &str = "in a container, /sys/devices/virtual/powercap is masked by default: \
     bind-mount the host's /sys/class/powercap (and the devices it links to) and point \
     EFFBENCH_SYSFS_ROOT at the mount";

fn unavailable(id: &str, domains: &[&str], reason: String, detail: serde_json::Value) -> Candidate {
    Candidate {
        kind: "rapl",
        id: id.to_string(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        status: Status::Unavailable { reason },
        detail,
        sensors: Vec::new(),
    }
}

/// (package name, or the parent zone for a subzone without one; domain name).
type GroupKey = (Option<String>, String);

/// Finds every RAPL zone under `root/class/powercap` (see the module docs for the policy).
/// Always returns at least one candidate: a missing or empty tree gives one `rapl` candidate
/// with [`Status::Unavailable`] and the reason.
pub fn discover(root: &Path, fs: Arc<dyn Fs>) -> Vec<Candidate> {
    let class = root.join("class/powercap");
    let entries = match fs.read_dir(&class) {
        Ok(e) => e,
        Err(e) => {
            let reason = if e.kind() == io::ErrorKind::NotFound {
                format!(
                    "no {}: not Linux, a VM without RAPL, or the RAPL driver is not loaded \
                     (`sudo modprobe intel_rapl_msr`, which also serves AMD Zen on kernel 5.11+); {CONTAINER_HINT}",
                    class.display()
                )
            } else {
                format!("cannot list {}: {e}", class.display())
            };
            return vec![unavailable("rapl", &["cpu"], reason, json!({ "path": class }))];
        }
    };
    let mut zones: Vec<Zone> = entries.into_iter().filter_map(Zone::parse).collect();
    if zones.is_empty() {
        let reason = format!(
            "no RAPL zones (intel-rapl:*) under {}: the CPU or hypervisor does not expose RAPL, \
             or the driver is not loaded (`sudo modprobe intel_rapl_msr`)",
            class.display()
        );
        return vec![unavailable("rapl", &["cpu"], reason, json!({ "path": class }))];
    }
    for z in &mut zones {
        let path = z.path.join("name");
        z.name = read_trimmed(fs.as_ref(), &path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    zones.sort_by(|a, b| (a.preference(), &a.ids).cmp(&(b.preference(), &b.ids)));

    // Group by (package name, domain name); the first of each group (preferred control type)
    // is kept, the others are recorded as its duplicates.
    let mut groups: Vec<(GroupKey, Vec<&Zone>)> = Vec::new();
    let mut broken = Vec::new();
    for z in &zones {
        let Ok(name) = &z.name else {
            broken.push(z);
            continue;
        };
        let package = if Kind::of(name) == Kind::Package {
            Some(name.clone())
        } else {
            z.parent_entry().map(|p| {
                zones
                    .iter()
                    .find(|o| o.control == z.control && o.entry == p)
                    .and_then(|o| o.name.clone().ok())
                    .unwrap_or(p)
            })
        };
        let key = (package, name.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(z),
            None => groups.push((key, vec![z])),
        }
    }

    let mut out: Vec<Candidate> = Vec::new();
    for ((package, name), members) in &groups {
        let id = match (Kind::of(name), package) {
            (Kind::Package, _) | (_, None) => format!("rapl:{name}"),
            (_, Some(p)) => format!("rapl:{p}:{name}"),
        };
        out.push(candidate(id, package.as_deref(), name, members, &fs));
    }
    for z in broken {
        let reason = format!("{}; {CONTAINER_HINT}", z.name.clone().err().unwrap_or_default());
        let mut detail = json!({ "zone": z.entry, "path": z.path });
        // A top-level zone of unknown name may be a package: it counts as a failed cpu zone.
        detail["summed"] = json!(z.ids.len() == 1);
        out.push(unavailable(&format!("rapl:{}", z.entry), &["cpu"], reason, detail));
    }
    refuse_incomplete_domains(&mut out);
    out
}

/// A domain is measured from all of its zones or not at all (module docs): when a zone that
/// would be summed into `cpu` or `dram` failed, every readable zone of that domain is turned
/// into [`Status::Unavailable`] naming the failed one, and its sensor is dropped.
fn refuse_incomplete_domains(out: &mut [Candidate]) {
    for domain in ["cpu", "dram"] {
        let failed: Vec<String> = out
            .iter()
            .filter(|c| c.status != Status::Ok && c.detail["summed"] != json!(false))
            .filter(|c| c.domains.iter().any(|d| d == domain))
            .map(|c| c.id.clone())
            .collect();
        if failed.is_empty() {
            continue;
        }
        for c in out.iter_mut().filter(|c| c.status == Status::Ok && c.domains.iter().any(|d| d == domain)) {
            c.sensors.clear();
            c.detail["refused_because"] = json!(failed);
            c.status = Status::Unavailable {
                reason: format!(
                    "readable, but not metered: {} of domain {domain} cannot be read, and {domain} from the \
                     other zones alone would undercount it; fix that zone (see its status) to measure {domain}",
                    failed.join(", ")
                ),
            };
        }
    }
}

/// The candidate for one (package, domain name) group; `members[0]` is the preferred zone.
fn candidate(id: String, package: Option<&str>, name: &str, members: &[&Zone], fs: &Arc<dyn Fs>) -> Candidate {
    let z = members[0];
    let kind = Kind::of(name);
    let duplicates: Vec<_> = members[1..].iter().map(|d| json!({ "zone": d.entry, "path": d.path })).collect();
    let mut detail = json!({
        "zone": z.entry,
        "control_type": z.control,
        "name": name,
        "package": package,
        "path": z.path,
        "duplicates": duplicates,
    });
    if !duplicates.is_empty() {
        detail["duplicates_note"] = json!(format!(
            "the same zone is exposed by several control types; {} is used (preference: intel-rapl, \
             intel-rapl-tpmi, intel-rapl-mmio), the others are not read",
            z.entry
        ));
    }
    let pkg = package.unwrap_or("its package");
    let (domain, not_summed) = match kind {
        Kind::Package => ("cpu", None),
        Kind::Dram => ("dram", None),
        Kind::Core => ("cpu", Some(format!("core (PP0) is part of {pkg}, which is metered as cpu"))),
        Kind::Uncore => ("cpu", Some(format!("uncore (PP1, usually the integrated GPU) is part of {pkg}"))),
        Kind::Psys => ("cpu", Some("psys covers the package, DRAM and more of the platform".to_string())),
        Kind::Other => ("cpu", Some(format!("unknown RAPL domain name {name:?}"))),
    };
    if let Some(why) = not_summed {
        let reason = format!("recorded, not summed: {why}; adding it would count that energy twice");
        detail["summed"] = json!(false);
        let domains: &[&str] = if kind == Kind::Psys { &["cpu", "dram"] } else { &[domain] };
        return unavailable(&id, domains, reason, detail);
    }
    detail["summed"] = json!(true);

    let energy_path = z.path.join("energy_uj");
    let max_path = z.path.join("max_energy_range_uj");
    detail["energy_uj"] = json!(energy_path);
    let fix = || permission_fix(&energy_path);
    let max = match Attr::new(max_path.clone()).read_u64(fs.as_ref(), &id, EXPECTED_UJ, &fix()) {
        Ok(0) => {
            let reason = format!("{} is 0, so counter wraps cannot be handled", max_path.display());
            return unavailable(&id, &[domain], reason, detail);
        }
        Ok(m) => m,
        Err(e) => {
            return Candidate { status: status_for(&e, fix), ..unavailable(&id, &[domain], String::new(), detail) }
        }
    };
    detail["max_energy_range_uj"] = json!(max);
    let mut energy = Attr::new(energy_path.clone());
    if let Err(e) = energy.read_u64(fs.as_ref(), &id, EXPECTED_UJ, &fix()) {
        return Candidate { status: status_for(&e, fix), ..unavailable(&id, &[domain], String::new(), detail) };
    }
    let wrap_at = max.saturating_add(1);
    let (ceiling, ceiling_source) = ceiling(fs.as_ref(), &z.path);
    detail["power_ceiling_w"] = json!(ceiling.0);
    detail["power_ceiling_source"] = json!(ceiling_source);
    let sensor = RaplSensor {
        id: id.clone(),
        domain: domain.to_string(),
        fs: Arc::clone(fs),
        energy,
        hint: fix(),
        wrap_at,
        ceiling,
        detail: detail.clone(),
    };
    Candidate {
        kind: "rapl",
        id,
        domains: vec![domain.to_string()],
        status: Status::Ok,
        detail,
        sensors: vec![Box::new(sensor)],
    }
}

#[cfg(test)]
mod tests;
