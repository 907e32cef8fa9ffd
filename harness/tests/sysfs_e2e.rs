//! End-to-end: `effbench run` reads RAPL from a fake powercap tree (EFFBENCH_SYSFS_ROOT) whose
//! package counter a thread advances at a known power, wrapping several times during the run;
//! the reported average power must be within 2% of it, labelled measured. And a bad counter
//! (jumping by 60% of its range) leaves every repeat's cpu energy unresolved, not a number.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use effbench::result::RunResult;

const WATTS: f64 = 25.0;
/// Small on purpose: the counter wraps every 2 s.
const MAX_UJ: u64 = 50_000_000;

fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[test]
fn measured_rapl_with_wraparound_gives_the_known_power() {
    let root = std::env::temp_dir().join(format!("effbench-sysfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let zone = root.join("class/powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    write(&zone.join("name"), "package-0\n");
    write(&zone.join("max_energy_range_uj"), &format!("{MAX_UJ}\n"));
    write(&zone.join("energy_uj"), "0\n");
    // A 50 J range at the 2 kW default ceiling could wrap unseen in any 25 ms gap, which a
    // loaded machine's 50 Hz sampler has: the zone states a 30 W limit (a 90 W ceiling, so
    // only a gap over 0.56 s is ambiguous), as real packages do in constraint_0_max_power_uw.
    write(&zone.join("constraint_0_max_power_uw"), "30000000\n");

    let stop = Arc::new(AtomicBool::new(false));
    let advance = {
        let (stop, energy) = (stop.clone(), zone.join("energy_uj"));
        std::thread::spawn(move || {
            let start = Instant::now();
            let offset = 40_000_000u64; // start near the wrap
            while !stop.load(Ordering::Relaxed) {
                let uj = (offset + (start.elapsed().as_secs_f64() * WATTS * 1e6) as u64) % (MAX_UJ + 1);
                write(&energy, &format!("{uj}\n"));
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let out = root.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_effbench"))
        .env("EFFBENCH_STORE", "none")
        .env("EFFBENCH_SYSFS_ROOT", &root)
        .args(["run", "--workload", "ae-machine-train", "--repeat", "3", "--idle-secs", "1", "--peak-secs", "0"])
        .args(["--sample-hz", "50", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    advance.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let r = RunResult::load(&out.join("ae-machine-train.json")).unwrap();
    let kinds: Vec<_> = r.energy_sources.iter().map(|s| (s.kind.as_str(), format!("{:?}", s.provenance))).collect();
    assert_eq!(
        kinds,
        vec![("rapl", "Measured".to_string())],
        "the estimate must not be added when RAPL measures the cpu"
    );
    let (mut joules, mut secs) = (0.0, 0.0);
    for rep in &r.repeats {
        assert!(
            rep.unresolved_energy.is_empty(),
            "a steady 25 W counter is fully measured: {:?}",
            rep.unresolved_energy
        );
        joules += rep.energy_j.total.0;
        secs += rep.wall_s.0;
    }
    let avg = joules / secs;
    assert!((avg - WATTS).abs() < 0.02 * WATTS, "average power {avg:.3} W over {secs:.2} s, expected {WATTS} W");
    assert!(secs > 2.0, "the run must last long enough to wrap the counter (it lasted {secs:.2} s)");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("ESTIMATED"));
    let _ = std::fs::remove_dir_all(&root);
}

/// Issue 11: a RAPL counter that jumps back and forth by 60% of its 262 kJ range every 20 ms
/// (about 8 MW as wraps or steps, far above the 2 kW ceiling). Every reading that moves is
/// rejected, so each repeat's cpu energy is unresolved: absent from `energy_j`, named in
/// `unresolved_energy`, UNRESOLVED in the table; never a huge or a near-zero "measured" figure.
#[test]
fn bad_rapl_counter_leaves_each_repeat_unresolved_not_a_number() {
    const RANGE: u64 = 262_143_328_850;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let zone = root.join("class/powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    write(&zone.join("name"), "package-0\n");
    write(&zone.join("max_energy_range_uj"), &format!("{RANGE}\n"));
    write(&zone.join("energy_uj"), &format!("{}\n", RANGE / 10 * 8));

    let stop = Arc::new(AtomicBool::new(false));
    let flip = {
        let (stop, energy) = (stop.clone(), zone.join("energy_uj"));
        std::thread::spawn(move || {
            let mut high = false;
            while !stop.load(Ordering::Relaxed) {
                let uj = if high { RANGE / 10 * 8 } else { RANGE / 10 * 2 };
                write(&energy, &format!("{uj}\n"));
                high = !high;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = root.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_effbench"))
        .env("EFFBENCH_STORE", "none")
        .env("EFFBENCH_SYSFS_ROOT", root)
        .args(["run", "--workload", "ae-machine-train", "--repeat", "2", "--idle-secs", "0.5", "--peak-secs", "0"])
        .args(["--sample-hz", "50", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    flip.join().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&o.stderr));

    let r = RunResult::load(&out.join("ae-machine-train.json")).unwrap();
    assert_eq!(r.repeats.len(), 2);
    for rep in &r.repeats {
        let domains: Vec<&str> = rep.unresolved_energy.iter().map(|u| u.domain.as_str()).collect();
        assert_eq!(domains, vec!["cpu"], "{:?}", rep.unresolved_energy);
        let reason = &rep.unresolved_energy[0].reason;
        assert!(reason.starts_with("rapl:package-0: ") && reason.contains("rejected"), "{reason}");
        assert!(!rep.energy_j.by_domain.contains_key("cpu"), "{:?}", rep.energy_j);
        assert_eq!(rep.energy_j.total.0, 0.0, "no other domain is metered");
    }
    assert!(stdout.contains("UNRESOLVED"), "{stdout}");
}

/// Issue 10: a two-socket tree whose package-1 `energy_uj` cannot be read (here an I/O error:
/// the path is a directory). `cpu` is refused whole, not measured from package-0 alone, so
/// `--require-measured` refuses the run (exit 4) naming the domain.
#[test]
fn unreadable_second_package_refuses_cpu_under_require_measured() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (zone, name) in [("intel-rapl:0", "package-0"), ("intel-rapl:1", "package-1")] {
        let zone = root.join("class/powercap").join(zone);
        std::fs::create_dir_all(&zone).unwrap();
        write(&zone.join("name"), &format!("{name}\n"));
        write(&zone.join("max_energy_range_uj"), "262143328850\n");
    }
    write(&root.join("class/powercap/intel-rapl:0/energy_uj"), "1000\n");
    std::fs::create_dir_all(root.join("class/powercap/intel-rapl:1/energy_uj")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_effbench"))
        .env("EFFBENCH_STORE", "none")
        .env("EFFBENCH_SYSFS_ROOT", root)
        .args(["run", "--workload", "ae-machine-train", "--repeat", "1", "--idle-secs", "0", "--peak-secs", "0"])
        .args(["--require-measured", "--out", root.join("out").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--require-measured: no measured energy source for cpu"), "{stderr}");
}
