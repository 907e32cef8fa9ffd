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
//! `energy_uj` is root-only since the fix for CVE-2020-8694 (§1.3): the candidate is then
//! [`Status::PermissionDenied`] with the exact fix. The harness never writes to these files.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::sysfs::{read_trimmed, status_for, Attr, Fs};
use super::{Candidate, Provenance, Reading, Sensor, SensorError, SourceInfo, Status};

/// RAPL registers update about every millisecond (Intel SDM Vol. 3B §14.9.3).
pub const UPDATE_PERIOD_S: f64 = 0.001;
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
        out.push(unavailable(
            &format!("rapl:{}", z.entry),
            &["cpu"],
            reason,
            json!({ "zone": z.entry, "path": z.path }),
        ));
    }
    out
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
    let sensor = RaplSensor {
        id: id.clone(),
        domain: domain.to_string(),
        fs: Arc::clone(fs),
        energy,
        hint: fix(),
        wrap_at,
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
mod tests {
    use std::time::Duration;

    use super::super::sysfs::testing::{FakeTree, Fault, FaultFs};
    use super::super::sysfs::RealFs;
    use super::*;
    use crate::meter::Meter;

    fn real() -> Arc<dyn Fs> {
        Arc::new(RealFs)
    }

    fn find<'a>(c: &'a [Candidate], id: &str) -> &'a Candidate {
        c.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no {id} in {:?}", ids(c)))
    }

    fn ids(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| c.id.as_str()).collect()
    }

    const MAX: u64 = 262_143_328_850;

    /// A two-socket server: packages 0 and 1 (with core and dram), a psys zone, an MMIO copy of
    /// package 0, and a package with a hex id (`intel-rapl:a`).
    fn server(tree: &FakeTree) {
        tree.rapl_zone("intel-rapl:0", "package-0", MAX, 1_000).unwrap();
        tree.rapl_zone("intel-rapl:0:0", "core", MAX, 10).unwrap();
        tree.rapl_zone("intel-rapl:0:1", "uncore", MAX, 10).unwrap();
        tree.rapl_zone("intel-rapl:0:2", "dram", 65_712_999_613, 20).unwrap();
        tree.rapl_zone("intel-rapl:1", "package-1", MAX, 2_000).unwrap();
        tree.rapl_zone("intel-rapl:1:0", "dram", 65_712_999_613, 30).unwrap();
        tree.rapl_zone("intel-rapl:a", "package-10", MAX, 5).unwrap();
        tree.rapl_zone("intel-rapl:2", "psys", MAX, 99).unwrap();
        tree.rapl_zone("intel-rapl-mmio:0", "package-0", MAX, 7_777).unwrap();
    }

    #[test]
    fn discovers_zones_policy_and_hex_ids() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeTree::new(dir.path());
        server(&tree);
        let c = discover(dir.path(), real());
        let mut got = ids(&c);
        got.sort();
        assert_eq!(
            got,
            vec![
                "rapl:package-0",
                "rapl:package-0:core",
                "rapl:package-0:dram",
                "rapl:package-0:uncore",
                "rapl:package-1",
                "rapl:package-10",
                "rapl:package-1:dram",
                "rapl:psys",
            ]
        );
        let metered: Vec<(String, String)> =
            c.iter().filter(|c| c.status == Status::Ok).map(|c| (c.id.clone(), c.sensors[0].info().domain)).collect();
        let metered: Vec<(&str, &str)> = metered.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            metered,
            vec![
                ("rapl:package-0", "cpu"),
                ("rapl:package-0:dram", "dram"),
                ("rapl:package-1", "cpu"),
                ("rapl:package-1:dram", "dram"),
                ("rapl:package-10", "cpu"),
            ]
        );
        for id in ["rapl:package-0:core", "rapl:package-0:uncore", "rapl:psys"] {
            let cand = find(&c, id);
            assert!(cand.sensors.is_empty(), "{id} must not be metered");
            assert!(matches!(&cand.status, Status::Unavailable { reason } if reason.contains("not summed")), "{id}");
        }
        assert_eq!(find(&c, "rapl:package-10").detail["zone"], "intel-rapl:a");
        assert_eq!(find(&c, "rapl:package-0:dram").detail["zone"], "intel-rapl:0:2");
    }

    #[test]
    fn mmio_duplicate_is_not_double_counted() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeTree::new(dir.path());
        tree.rapl_zone("intel-rapl-mmio:0", "package-0", MAX, 7_777).unwrap();
        tree.rapl_zone("intel-rapl:0", "package-0", MAX, 1_000).unwrap();
        let c = discover(dir.path(), real());
        assert_eq!(ids(&c), vec!["rapl:package-0"]);
        let p = &c[0];
        assert_eq!(p.detail["zone"], "intel-rapl:0", "the MSR tree is preferred");
        assert_eq!(p.detail["duplicates"][0]["zone"], "intel-rapl-mmio:0");
        assert_eq!(p.sensors.len(), 1);
        let mut s = c.into_iter().next().unwrap().sensors.remove(0);
        assert_eq!(s.read().unwrap(), Reading::Counter { raw: 1_000, wrap_at: MAX + 1, joules_per_unit: 1e-6 });
        // Only the MMIO copy: it is used.
        let dir2 = tempfile::tempdir().unwrap();
        FakeTree::new(dir2.path()).rapl_zone("intel-rapl-mmio:0", "package-0", MAX, 7).unwrap();
        let c2 = discover(dir2.path(), real());
        assert_eq!((c2[0].id.as_str(), &c2[0].status), ("rapl:package-0", &Status::Ok));
    }

    #[test]
    fn multi_die_packages_are_each_metered() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeTree::new(dir.path());
        tree.rapl_zone("intel-rapl:0", "package-0-die-0", MAX, 1).unwrap();
        tree.rapl_zone("intel-rapl:1", "package-0-die-1", MAX, 1).unwrap();
        tree.rapl_zone("intel-rapl:1:0", "dram", MAX, 1).unwrap();
        let c = discover(dir.path(), real());
        assert_eq!(ids(&c), vec!["rapl:package-0-die-0", "rapl:package-0-die-1", "rapl:package-0-die-1:dram"]);
        assert!(c.iter().all(|c| c.status == Status::Ok));
    }

    /// Plain directories instead of the kernel's symlinks (a hand-made or copied tree, as the
    /// end-to-end test and container bind mounts use) are found the same way.
    #[test]
    fn flat_tree_without_symlinks_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let t = FakeTree::new(dir.path());
        let zone = dir.path().join("class/powercap/intel-rapl:0");
        t.write(zone.join("name"), "package-0\n").unwrap();
        t.write(zone.join("max_energy_range_uj"), "50000000\n").unwrap();
        t.write(zone.join("energy_uj"), "49999999\n").unwrap();
        let mut c = discover(dir.path(), real());
        assert_eq!((c[0].id.as_str(), &c[0].status), ("rapl:package-0", &Status::Ok));
        let r = c[0].sensors.remove(0).read().unwrap();
        assert_eq!(r, Reading::Counter { raw: 49_999_999, wrap_at: 50_000_001, joules_per_unit: 1e-6 });
    }

    #[test]
    fn missing_or_empty_powercap_is_unavailable_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        let c = discover(dir.path(), real());
        assert_eq!(ids(&c), vec!["rapl"]);
        assert!(
            matches!(&c[0].status, Status::Unavailable { reason } if reason.contains("class/powercap") && reason.contains("intel_rapl_msr")),
            "{:?}",
            c[0].status
        );
        // Present but with no RAPL zone (another powercap control type only).
        std::fs::create_dir_all(dir.path().join("class/powercap/dtpm")).unwrap();
        let c = discover(dir.path(), real());
        assert!(matches!(&c[0].status, Status::Unavailable { reason } if reason.contains("no RAPL zones")));
    }

    #[test]
    fn permission_denied_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeTree::new(dir.path());
        let zone = tree.rapl_zone("intel-rapl:0", "package-0", MAX, 1).unwrap();
        let fs = Arc::new(FaultFs::real());
        let energy = zone.join("energy_uj");
        fs.set(&energy, Fault::PermissionDenied);
        let c = discover(dir.path(), fs.clone());
        let Status::PermissionDenied { fix } = &c[0].status else { panic!("{:?}", c[0].status) };
        assert!(fix.contains(&energy.display().to_string()), "{fix}");
        assert!(fix.contains("chmod o+r") && fix.contains("root") && fix.contains("udev"), "{fix}");
        assert!(c[0].sensors.is_empty(), "no silent fallback: nothing to meter");

        // Revoked after discovery: the read itself reports it.
        fs.clear(&energy);
        let mut s = discover(dir.path(), fs.clone()).remove(0).sensors.remove(0);
        fs.set(&energy, Fault::PermissionDenied);
        match s.read() {
            Err(SensorError::PermissionDenied { path, hint, .. }) => {
                assert_eq!(path, energy);
                assert!(hint.contains("CVE-2020-8694"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_parse_error_naming_path_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeTree::new(dir.path());
        let zone = tree.rapl_zone("intel-rapl:0", "package-0", MAX, 1).unwrap();
        let mut s = discover(dir.path(), real()).remove(0).sensors.remove(0);
        for garbage in ["abc\n", "", "-3\n"] {
            tree.write(zone.join("energy_uj"), garbage).unwrap();
            match s.read() {
                Err(SensorError::Parse { path, raw, .. }) => {
                    assert_eq!(path, zone.join("energy_uj"));
                    assert_eq!(raw, garbage);
                }
                other => panic!("{garbage:?}: {other:?}"),
            }
        }
        // Garbage in max_energy_range_uj at discovery: unavailable, naming file and value.
        tree.write(zone.join("max_energy_range_uj"), "lots\n").unwrap();
        let c = discover(dir.path(), real());
        let Status::Unavailable { reason } = &c[0].status else { panic!("{:?}", c[0].status) };
        assert!(reason.contains("max_energy_range_uj") && reason.contains("lots"), "{reason}");
    }

    #[test]
    fn unreadable_name_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeTree::new(dir.path());
        let zone = tree.rapl_zone("intel-rapl:0", "package-0", MAX, 1).unwrap();
        let fs = Arc::new(FaultFs::real());
        fs.set(zone.join("name"), Fault::Missing);
        let c = discover(dir.path(), fs);
        assert_eq!(ids(&c), vec!["rapl:intel-rapl:0"]);
        assert!(matches!(&c[0].status, Status::Unavailable { reason } if reason.contains("EFFBENCH_SYSFS_ROOT")));
    }

    /// Scripted counters on the fake tree, read through a real meter: two packages summed
    /// into `cpu`, one wrapping near `max_energy_range_uj`, plus DRAM in its own domain.
    #[test]
    fn wraparound_through_the_meter_gives_the_right_total() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeTree::new(dir.path());
        let max = 1_000_000;
        tree.rapl_zone("intel-rapl:0", "package-0", max, 800_000).unwrap();
        tree.rapl_zone("intel-rapl:0:0", "core", max, 0).unwrap();
        tree.rapl_zone("intel-rapl:0:2", "dram", max, 0).unwrap();
        tree.rapl_zone("intel-rapl:1", "package-1", max, 10).unwrap();
        tree.rapl_zone("intel-rapl-mmio:0", "package-0", max, 800_000).unwrap();
        let sensors: Vec<Box<dyn Sensor>> = discover(dir.path(), real())
            .into_iter()
            .filter(|c| c.status == Status::Ok)
            .flat_map(|c| c.sensors)
            .collect();
        assert_eq!(sensors.len(), 3, "package-0, its dram, package-1: no core, no mmio copy");
        let meter = Meter::start(sensors, 1.0).unwrap();
        let begin = meter.mark();
        // package-0 runs over its max and wraps twice over the window; package-1 grows.
        let script = [(950_000, 0), (100_000, 500_000), (550_000, 600_000), (5_000, 700_000)];
        for (p0, p1) in script {
            tree.set_energy_uj("intel-rapl:0", p0).unwrap();
            tree.set_energy_uj("intel-rapl:1", 10 + p1).unwrap();
            tree.set_energy_uj("intel-rapl:0:2", p1 / 10).unwrap();
            tree.set_energy_uj("intel-rapl:0:0", p0 / 2).unwrap(); // never read
            tree.set_energy_uj("intel-rapl-mmio:0", p0).unwrap(); // never read
            let _ = meter.mark();
        }
        std::thread::sleep(Duration::from_millis(5));
        let end = meter.mark();
        let w = meter.window(&begin, &end);
        // package-0: 800k -> 950k (150_000) -> wrap to 100k (1_000_001 - 950_000 + 100_000 =
        // 150_001) -> 550k (450_000) -> wrap to 5k (1_000_001 - 550_000 + 5_000 = 455_001).
        // (No step exceeds half the range, which the meter would flag as a possibly hidden wrap.)
        let p0 = 150_000 + 150_001 + 450_000 + 455_001;
        let p1 = 700_000;
        let cpu = w.by_domain["cpu"].0;
        assert!((cpu - (p0 + p1) as f64 * 1e-6).abs() < 1e-9, "cpu {cpu} J; {w:?}");
        assert!((w.by_domain["dram"].0 - 0.07).abs() < 1e-9, "{w:?}");
        assert!(w.warnings.iter().all(|m| !m.contains("rapl")), "{:?}", w.warnings);
    }
}
