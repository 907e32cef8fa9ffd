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
use effbench_models::{Kind, WorkloadSpec};

mod peer_common;

use peer_common::{process_cpu_s, quantile};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    peer_common::main("peer_infer", Kind::Infer, time_workload);
}
