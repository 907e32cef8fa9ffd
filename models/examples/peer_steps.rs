//! effbench's training step timed as `effbench run` runs it, for the peer comparison
//! (`bench/peers/compare.sh`, which runs this and `bench/peers/jax_steps.py` in turn).
//!
//! What is timed: `train::step` (batch gathering, forward, loss, backward, optimizer update),
//! the one function the run's training loop calls per step, on the batches that loop draws
//! (seed 0: the recipe's data selection, then the seeded shuffle, epoch after epoch), at the
//! baseline recipe's batch size and learning-rate schedule, with mimalloc as the allocator
//! (as in the `effbench` binary) and the thread count set the way the run sets it (the
//! workload's own unless `--threads`), before any candle work. Evaluation is not timed.
//!
//! Per workload it prints one JSON line on stdout: the median and the 10th/90th percentile
//! of the wall time of single steps, and the CPU time of all the process's threads over the
//! timed steps divided by their number (`cpu_ms`; from /proc/self/task/*/schedstat, in ns).
//! On a shared machine the wall time includes waiting for a CPU; the CPU time does not.
//!
//! `cargo run --release -p effbench-models --example peer_steps -- [WORKLOAD ...]
//!  [--threads N] [--min-seconds S]`

use std::time::Instant;

use candle_core::Device;
use effbench_models::data::DataConfig;
use effbench_models::rng::{self, Stream};
use effbench_models::train::{self, Optim};
use effbench_models::{Kind, WorkloadSpec};

mod peer_common;

use peer_common::{process_cpu_s, quantile};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn time_workload(spec: &WorkloadSpec, threads: usize, min_seconds: f64) -> Result<String, String> {
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", spec.id);
    let recipe = spec.recipe("baseline").map_err(|x| e(&x))?.recipe;
    let dev = Device::Cpu;
    let task = spec.build_task(&DataConfig::shipped_only()).map_err(|x| e(&x))?;
    let net = spec.build_net(0, &dev).map_err(|x| e(&x))?;
    let mut optim = Optim::new(&recipe, net.params().all()).map_err(|x| e(&x))?;
    // The run's batches: selection, then a seeded shuffle per epoch (train::train).
    let pool = train::select(task.as_ref(), &recipe, 0).map_err(|x| e(&x))?;
    let mut shuffle = rng::rng(0, Stream::Shuffle);
    let mut batches = Vec::new();
    let mut samples = 0u64;
    let mut step = || -> Result<f64, String> {
        if batches.is_empty() {
            let order = rng::permutation(&mut shuffle, pool.len());
            batches = order.chunks(recipe.batch_size).rev().map(|c| c.iter().map(|&k| pool[k]).collect()).collect();
        }
        let idx: Vec<usize> = batches.pop().unwrap_or_default();
        let t = Instant::now();
        let lr = recipe.lr_at(samples);
        train::step(task.as_ref(), net.as_ref(), &mut optim, &idx, lr, &dev).map_err(|x| e(&x))?;
        samples += idx.len() as u64;
        Ok(t.elapsed().as_secs_f64())
    };
    let warm: Vec<f64> = (0..10).map(|_| step()).collect::<Result<_, _>>()?;
    let mut sorted = warm;
    sorted.sort_by(f64::total_cmp);
    let n = ((min_seconds / quantile(&sorted, 0.5)).ceil() as usize).max(20);
    let cpu0 = process_cpu_s();
    let mut times = (0..n).map(|_| step()).collect::<Result<Vec<f64>, _>>()?;
    let cpu = process_cpu_s() - cpu0;
    times.sort_by(f64::total_cmp);
    let ms = |s: f64| (s * 1e6).round() / 1e3;
    Ok(format!(
        "{{\"workload\":\"{}\",\"batch\":{},\"threads\":{threads},\"median_ms\":{},\"p10_ms\":{},\"p90_ms\":{},\
         \"cpu_ms\":{},\"steps\":{n}}}",
        spec.id,
        recipe.batch_size,
        ms(quantile(&times, 0.5)),
        ms(quantile(&times, 0.1)),
        ms(quantile(&times, 0.9)),
        ms(cpu / n as f64),
    ))
}

fn main() {
    peer_common::main("peer_steps", Kind::Train, time_workload);
}
