//! `effbench report`'s memory does not grow with the number of results (issue 12, "10,000
//! result files: bounded memory"): the same report of N and of 10×N results, every format,
//! with traces and a baseline, and the child's peak resident memory from the kernel
//! (`wait4(2)`'s `ru_maxrss`, kilobytes on Linux: getrusage(2)) may grow by at most
//! [`GROWTH_BOUND_KIB`].
//!
//! The bound: what the report keeps of each result between its two passes is its name, path,
//! id, unit and figures, about 1 KB; 90 more results keep under 0.1 MiB more. The rest of the
//! bound is the allocator's slack and the one plot that does grow with the results (the
//! energy per unit of every input of a workload, about 40 bytes of SVG per input). Before the
//! report streamed, every result's parsed file, trace and plots were held until the end:
//! about 260 KB per result in a release build (bench/report-speed.sh: 294 MiB for 1,000
//! results, 60 MiB for 100), 23 MiB for 90 more, so this test fails on that code.
//!
//! The inputs are copies of one real result (`util::synthetic_results`) and the fixture's real
//! trace beside each; synthetic, not measurements.

mod util;

use std::path::Path;
use std::process::Stdio;

use util::{synthetic_results, tempdir};

/// Allowed growth of peak RSS from N to 10×N results.
const GROWTH_BOUND_KIB: i64 = 8 * 1024;
const N: usize = 10;

/// The peak RSS (KiB) of `effbench report` of `n` results, and the report's directory.
fn report_rss(tmp: &Path, n: usize) -> (i64, std::path::PathBuf) {
    let fix = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report");
    let inputs = tmp.join(format!("in-{n}"));
    for p in synthetic_results(&inputs, "digits-mlp-train.json", n) {
        std::fs::copy(fix.join("results/digits-mlp-train.trace.csv"), p.with_extension("trace.csv")).unwrap();
    }
    let out = tmp.join(format!("out-{n}"));
    let err = tmp.join(format!("stderr-{n}"));
    // Reaped by wait4 below (which gives its rusage), not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    let child = util::effbench()
        .args(["report", inputs.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--format", "html,md,bmf,prometheus,csv", "--baseline"])
        .arg(fix.join("baselines"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child; both out-pointers are valid for the call. The child's
    // `Child` is never waited on again.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4: {}", std::io::Error::last_os_error());
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    assert_eq!(code, Some(0), "report of {n} results failed: {}", std::fs::read_to_string(&err).unwrap());
    (usage.ru_maxrss, out)
}

#[test]
fn peak_memory_does_not_grow_with_the_number_of_results() {
    let tmp = tempdir("report-memory");
    let (small, _) = report_rss(tmp.path(), N);
    let (large, out) = report_rss(tmp.path(), 10 * N);
    // The larger report is whole: every result has its section, its rows and its plots.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(html.matches("<section id=").count(), 10 * N);
    let csv = std::fs::read_to_string(out.join("repeats.csv")).unwrap();
    let repeats = csv.lines().count() - 1;
    assert_eq!(repeats % (10 * N), 0, "every result's repeats: {repeats}");
    let svgs =
        std::fs::read_dir(&out).unwrap().filter(|e| e.as_ref().unwrap().path().extension() == Some("svg".as_ref()));
    assert!(svgs.count() >= 3 * 10 * N, "quality, power and reduction plots of every result");
    eprintln!("peak RSS: {N} results {small} KiB, {} results {large} KiB", 10 * N);
    assert!(
        large - small < GROWTH_BOUND_KIB,
        "peak RSS grew from {small} KiB ({N} results) to {large} KiB ({} results): more than {GROWTH_BOUND_KIB} KiB",
        10 * N
    );
}
