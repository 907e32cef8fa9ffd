//! effbench's inference pass timed as `effbench run` runs it, for the peer comparison with
//! onnxruntime (`bench/peers/compare.sh`, which runs this and `bench/peers/ort_infer.py` in
//! turn on the same queries, batch size and thread count).
//!
//! What is timed: `InferSession::pass`, the work of one measured pass of an inference run:
//! every query of the workload through the model at the workload's batch size (batch 1 or
//! 250), the answers copied back to the host and scored. Loading the weights and building the
//! query tensors are outside, as in the run. mimalloc is the allocator and the thread count
//! is set the way the run sets it, as in `peer_steps.rs`.
//!
//! Per workload it prints one JSON line: the median and 10th/90th percentile of the wall time
//! per query over whole passes, the CPU time of all threads per query (`cpu_us`, from
//! /proc/self/task/*/schedstat), and the quality of the answers (so a fast but wrong pass
//! shows).
//!
//! `cargo run --release -p effbench-models --example peer_infer -- [WORKLOAD ...]
//!  [--threads N] [--min-seconds S]`

use std::time::Instant;

use candle_core::Device;
use effbench_models::data::DataConfig;
use effbench_models::infer::{default_weights_dir, InferSession};
use effbench_models::{Kind, WorkloadSpec, WORKLOADS};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    ids: Vec<String>,
    threads: Option<usize>,
    min_seconds: f64,
}

fn parse_args() -> Result<Args, String> {
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
        a.ids = WORKLOADS.iter().filter(|w| w.kind == Kind::Infer).map(|w| w.id.to_string()).collect();
    }
    Ok(a)
}

/// CPU time of every thread of this process so far, in seconds (the first field of each
/// thread's schedstat: time on a CPU, ns; Documentation/scheduler/sched-stats.rst).
fn process_cpu_s() -> f64 {
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

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn time_workload(spec: &WorkloadSpec, threads: usize, min_seconds: f64) -> Result<String, String> {
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", spec.id);
    let session = InferSession::new(spec, &DataConfig::discover(None), &default_weights_dir(), &Device::Cpu)
        .map_err(|x| e(&x))?;
    let queries = session.queries() as f64;
    let pass = || -> Result<(f64, f64), String> {
        let t = Instant::now();
        let out = session.pass().map_err(|x| e(&x))?;
        Ok((t.elapsed().as_secs_f64(), out.quality))
    };
    let (first, _) = pass()?; // warm-up: caches, the allocator's pools
    let n = ((min_seconds / first).ceil() as usize).clamp(5, 10_000);
    let cpu0 = process_cpu_s();
    let mut times = Vec::with_capacity(n);
    let mut quality = f64::NAN;
    for _ in 0..n {
        let (t, q) = pass()?;
        times.push(t);
        quality = q;
    }
    let cpu = process_cpu_s() - cpu0;
    times.sort_by(f64::total_cmp);
    let us = |s: f64| (s / queries * 1e7).round() / 10.0;
    Ok(format!(
        "{{\"workload\":\"{}\",\"batch\":{},\"threads\":{threads},\"queries\":{},\"median_us\":{},\"p10_us\":{},\
         \"p90_us\":{},\"cpu_us\":{},\"passes\":{n},\"quality\":{quality}}}",
        spec.id,
        session.batch(),
        session.queries(),
        us(quantile(&times, 0.5)),
        us(quantile(&times, 0.1)),
        us(quantile(&times, 0.9)),
        us(cpu / n as f64),
    ))
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("peer_infer: {e}\nusage: peer_infer [WORKLOAD ...] [--threads N] [--min-seconds S]");
        std::process::exit(2)
    });
    for id in &args.ids {
        let spec = match WorkloadSpec::get(id) {
            Ok(s) if s.kind == Kind::Infer => s,
            _ => {
                eprintln!("peer_infer: {id:?} is not an inference workload (`effbench list`)");
                std::process::exit(2)
            }
        };
        let threads = args.threads.unwrap_or(spec.threads);
        // As `effbench::threads::set` does: candle reads this on every matrix product.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        match time_workload(spec, threads, args.min_seconds) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("peer_infer: {e}");
                std::process::exit(1)
            }
        }
    }
}
