//! What `peer_steps.rs` and `peer_infer.rs` share: their arguments, the process's CPU time,
//! quantiles, and the loop over workloads that sets the thread count as a run does and prints
//! one JSON line per workload.

use effbench_models::{Kind, WorkloadSpec, WORKLOADS};

/// CPU time of every thread of this process so far, in seconds (the first field of each
/// thread's schedstat: time on a CPU, ns; Documentation/scheduler/sched-stats.rst).
pub fn process_cpu_s() -> f64 {
    let mut ns = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                ns += s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
    }
    ns as f64 * 1e-9
}

/// The `q` quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

struct Args {
    ids: Vec<String>,
    threads: Option<usize>,
    min_seconds: f64,
}

fn parse_args(kind: Kind) -> Result<Args, String> {
    let mut a = Args { ids: Vec::new(), threads: None, min_seconds: 2.0 };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match s.as_str() {
            "--threads" => a.threads = Some(value("--threads")?.parse().map_err(|e| format!("--threads: {e}"))?),
            "--min-seconds" => {
                a.min_seconds = value("--min-seconds")?.parse().map_err(|e| format!("--min-seconds: {e}"))?
            }
            _ if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => a.ids.push(s),
        }
    }
    if a.ids.is_empty() {
        a.ids = WORKLOADS.iter().filter(|w| w.kind == kind).map(|w| w.id.to_string()).collect();
    }
    Ok(a)
}

/// Parses the arguments, then times each workload of `kind` with `time` (given the spec, its
/// thread count and the minimum timed seconds) and prints its JSON line; exits 2 on bad
/// usage, 1 when a workload fails.
pub fn main(name: &str, kind: Kind, time: fn(&WorkloadSpec, usize, f64) -> Result<String, String>) {
    let args = parse_args(kind).unwrap_or_else(|e| {
        eprintln!("{name}: {e}\nusage: {name} [WORKLOAD ...] [--threads N] [--min-seconds S]");
        std::process::exit(2)
    });
    let what = if kind == Kind::Train { "a training" } else { "an inference" };
    let mut specs = Vec::new();
    for id in &args.ids {
        match WorkloadSpec::get(id) {
            Ok(s) if s.kind == kind => specs.push(s),
            _ => {
                eprintln!("{name}: {id:?} is not {what} workload (`effbench list`)");
                std::process::exit(2)
            }
        }
    }
    // As `effbench::threads::size_pool` does: rayon's pool, which candle's GEMMs and the fused
    // convolution run on, built once with the most threads any workload here uses.
    let most = specs.iter().map(|s| args.threads.unwrap_or(s.threads)).max().unwrap_or(1);
    let _ = rayon::ThreadPoolBuilder::new().num_threads(most).build_global();
    for spec in specs {
        let threads = args.threads.unwrap_or(spec.threads);
        // As `effbench::threads::set` does: candle reads this on every matrix product.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        match time(spec, threads, args.min_seconds) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1)
            }
        }
    }
}
