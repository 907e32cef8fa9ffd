//! RAPL discovery and readings on fake powercap trees.

use std::time::{Duration, Instant};

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

/// Each zone's power limit may be set up to `watts`: its ceiling is three times that.
fn limit(tree: &FakeTree, zone: &str, watts: u64) {
    let path = Path::new("class/powercap").join(zone).join("constraint_0_max_power_uw");
    tree.write(path, &format!("{}\n", watts * 1_000_000)).unwrap();
}

/// The metered sensors of a fake tree, in a stopped meter (marks then sample only at the
/// scripted instants given to `mark_at`), and the instant to count from.
fn scripted_meter(root: &Path) -> (Meter, Instant) {
    let sensors: Vec<Box<dyn Sensor>> =
        discover(root, real()).into_iter().filter(|c| c.status == Status::Ok).flat_map(|c| c.sensors).collect();
    let mut meter = Meter::start(sensors, 1.0).unwrap();
    meter.stop();
    (meter, Instant::now())
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
    // A 1 J range wraps in 0.5 ms at the 2 kW default ceiling, so every gap could hide a wrap:
    // these zones state a 1 W limit (3 W ceiling), and readings come 0.25 s apart (at most
    // 1.82 W; one more range would be at least 4.6 W).
    for zone in ["intel-rapl:0", "intel-rapl:0:2", "intel-rapl:1"] {
        limit(&tree, zone, 1);
    }
    let (meter, t0) = scripted_meter(dir.path());
    assert_eq!(meter.sources().len(), 3, "package-0, its dram, package-1: no core, no mmio copy");
    let at = |k: u32| t0 + Duration::from_millis(250) * k;
    let begin = meter.mark_at(at(1));
    // package-0 runs over its max and wraps twice over the window; package-1 grows.
    let script = [(950_000, 0), (100_000, 300_000), (550_000, 600_000), (5_000, 700_000)];
    for (k, (p0, p1)) in script.into_iter().enumerate() {
        tree.set_energy_uj("intel-rapl:0", p0).unwrap();
        tree.set_energy_uj("intel-rapl:1", 10 + p1).unwrap();
        tree.set_energy_uj("intel-rapl:0:2", p1 / 10).unwrap();
        tree.set_energy_uj("intel-rapl:0:0", p0 / 2).unwrap(); // never read
        tree.set_energy_uj("intel-rapl-mmio:0", p0).unwrap(); // never read
        let _ = meter.mark_at(at(2 + k as u32));
    }
    let end = meter.mark_at(at(6));
    let w = meter.window(&begin, &end);
    // package-0: 800k -> 950k (150_000) -> wrap to 100k (1_000_001 - 950_000 + 100_000 =
    // 150_001) -> 550k (450_000) -> wrap to 5k (1_000_001 - 550_000 + 5_000 = 455_001).
    let p0 = 150_000 + 150_001 + 450_000 + 455_001;
    let p1 = 700_000;
    let cpu = w.by_domain["cpu"].0;
    assert!((cpu - (p0 + p1) as f64 * 1e-6).abs() < 1e-9, "cpu {cpu} J; {w:?}");
    assert!((w.by_domain["dram"].0 - 0.07).abs() < 1e-9, "{w:?}");
    assert!(w.warnings.iter().all(|m| !m.contains("rapl")), "{:?}", w.warnings);
    assert!(w.unresolved.is_empty(), "{:?}", w.unresolved);
}

/// The wraparound sequence of a peer project's RAPL tests (zeusd's `multiple_wraparounds`:
/// a small `max_energy_range_uj` written to a temp `energy_uj` file, consecutive readings
/// that each cross the wrap point), made harder: every step is a wrap of 70-90% of the range,
/// the last landing on exactly 0, read every 10 ms from a zone limited to 40 W (a 120 W
/// ceiling: each wrap is at most 90 W, one more range at least 170 W). effbench used to
/// reject all of them as resets and report about 0 J.
#[test]
fn wraps_of_70_to_90_percent_of_the_range_are_counted_as_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let tree = FakeTree::new(dir.path());
    tree.rapl_zone("intel-rapl:0", "package-0", 999_999, 900_000).unwrap(); // wraps at 1_000_000
    limit(&tree, "intel-rapl:0", 40);
    let (meter, t0) = scripted_meter(dir.path());
    let at = |k: u32| t0 + Duration::from_millis(10) * k;
    let begin = meter.mark_at(at(1));
    let mut end = begin.clone();
    for (k, raw) in [700_000, 450_000, 300_000, 200_000, 0].into_iter().enumerate() {
        tree.set_energy_uj("intel-rapl:0", raw).unwrap();
        end = meter.mark_at(at(2 + k as u32));
    }
    // (A further reading 10 ms later with no change could itself hide a whole 1 J wrap at
    // 100 W, within the ceiling: the window ends on the last wrap.)
    let w = meter.window(&begin, &end);
    // 800_000 + 750_000 + 850_000 + 900_000 + 800_000 µJ.
    assert!((w.by_domain["cpu"].0 - 4.1).abs() < 1e-9, "{w:?}");
    assert!(w.unresolved.is_empty() && w.warnings.is_empty(), "{w:?}");
}

/// Issue 11: a bad counter that jumps back by 60% of RAPL's 262 kJ range 0.55 s after the
/// previous reading was taken as a wrap (105 kJ, 190 kW). Above the 2 kW default ceiling it
/// is a rejected reading, and that window's cpu energy is unresolved, not a huge number.
#[test]
fn jump_back_above_the_ceiling_is_rejected_and_leaves_the_window_unresolved() {
    let dir = tempfile::tempdir().unwrap();
    let tree = FakeTree::new(dir.path());
    tree.rapl_zone("intel-rapl:0", "package-0", MAX, MAX / 10 * 8).unwrap();
    let (meter, t0) = scripted_meter(dir.path());
    let begin = meter.mark_at(t0 + Duration::from_millis(100));
    tree.set_energy_uj("intel-rapl:0", MAX / 10 * 2).unwrap();
    let bad = meter.mark_at(t0 + Duration::from_millis(650));
    let w = meter.window(&begin, &bad);
    assert_eq!(w.unresolved.keys().collect::<Vec<_>>(), vec!["cpu"], "{w:?}");
    let reason = &w.unresolved["cpu"];
    assert!(reason.starts_with("rapl:package-0: 1 of 2 readings"), "{reason}");
    assert!(reason.contains("above the 2000 W this domain can draw") && reason.contains("rejected"), "{reason}");
    assert!(w.by_domain["cpu"].0 < 1e-9, "no energy from the rejected reading: {w:?}");
    // Counting resumes from the new value, and the next window is complete.
    tree.set_energy_uj("intel-rapl:0", MAX / 10 * 2 + 5_000_000).unwrap();
    let next = meter.mark_at(t0 + Duration::from_millis(750));
    let w = meter.window(&bad, &next);
    assert!((w.by_domain["cpu"].0 - 5.0).abs() < 1e-9 && w.unresolved.is_empty(), "{w:?}");
}

/// Issue 10: on a two-socket tree whose package-1 cannot be read, `cpu` is not metered from
/// package-0 alone: the whole domain is refused (named reason, no sensor), so the run falls
/// back to the estimate or `--require-measured` refuses it. DRAM, readable on both, stays.
#[test]
fn unreadable_package_on_two_sockets_refuses_the_cpu_domain() {
    for fault in [Fault::PermissionDenied, Fault::Errno(5)] {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeTree::new(dir.path());
        tree.rapl_zone("intel-rapl:0", "package-0", MAX, 1_000).unwrap();
        tree.rapl_zone("intel-rapl:0:0", "dram", MAX, 10).unwrap();
        let p1 = tree.rapl_zone("intel-rapl:1", "package-1", MAX, 2_000).unwrap();
        tree.rapl_zone("intel-rapl:1:0", "dram", MAX, 20).unwrap();
        let fs = Arc::new(FaultFs::real());
        fs.set(p1.join("energy_uj"), fault.clone());
        let c = discover(dir.path(), fs);
        let p0 = find(&c, "rapl:package-0");
        let Status::Unavailable { reason } = &p0.status else { panic!("{fault:?}: {:?}", p0.status) };
        assert!(reason.contains("rapl:package-1 of domain cpu cannot be read"), "{reason}");
        assert!(p0.sensors.is_empty(), "{fault:?}: package-0 must not be metered alone");
        assert_eq!(p0.detail["refused_because"], json!(["rapl:package-1"]));
        assert!(find(&c, "rapl:package-1").status != Status::Ok);
        let metered: Vec<&str> = c.iter().filter(|c| c.status == Status::Ok).map(|c| c.id.as_str()).collect();
        assert_eq!(metered, vec!["rapl:package-0:dram", "rapl:package-1:dram"], "{fault:?}");
    }
}
