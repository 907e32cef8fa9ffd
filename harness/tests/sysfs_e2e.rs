//! End-to-end: `effbench run` reads RAPL from a fake powercap tree (EFFBENCH_SYSFS_ROOT) whose
//! package counter a thread advances at a known power, wrapping several times during the run;
//! the reported average power must be within 2% of it, labelled measured.

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
        joules += rep.energy_j.total.0;
        secs += rep.wall_s.0;
    }
    let avg = joules / secs;
    assert!((avg - WATTS).abs() < 0.02 * WATTS, "average power {avg:.3} W over {secs:.2} s, expected {WATTS} W");
    assert!(secs > 2.0, "the run must last long enough to wrap the counter (it lasted {secs:.2} s)");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("ESTIMATED"));
    let _ = std::fs::remove_dir_all(&root);
}
