//! One training step (forward + backward + optimizer update) of every training workload, at
//! its baseline recipe's batch size and its chosen thread count, with mimalloc as the
//! allocator (as in the `effbench` binary). Compare with bench/peers (JAX on CPU).
//!
//! `cargo bench -p effbench --bench train_step`
//! Thread count: each workload's own (`effbench list --json`), or RAYON_NUM_THREADS.

use candle_core::Device;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use effbench_models::data::DataConfig;
use effbench_models::train::{self, Optim};
use effbench_models::{Kind, WORKLOADS};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn steps(c: &mut Criterion) {
    let user_threads = effbench::threads::from_env();
    let data = DataConfig::shipped_only();
    let dev = Device::Cpu;
    let mut group = c.benchmark_group("train_step");
    group.sample_size(20);
    for spec in WORKLOADS.iter().filter(|w| w.kind == Kind::Train) {
        let recipe = spec.recipe("baseline").expect("shipped baseline").recipe;
        let threads = user_threads.unwrap_or(spec.threads);
        effbench::threads::set(threads);
        let task = spec.build_task(&data).expect("shipped data");
        let net = spec.build_net(0, &dev).expect("net");
        let mut optim = Optim::new(&recipe, net.params().all()).expect("optimizer");
        let n = task.train_len();
        let batches: Vec<Vec<usize>> =
            (0..8).map(|b| (0..recipe.batch_size).map(|i| (b * 7919 + i * 104_729) % n).collect()).collect();
        let mut k = 0;
        let id = BenchmarkId::new(spec.id, format!("b{}-t{threads}", recipe.batch_size));
        group.bench_function(id, |b| {
            b.iter(|| {
                k = (k + 1) % batches.len();
                train::step(task.as_ref(), net.as_ref(), &mut optim, &batches[k], recipe.learning_rate, &dev)
                    .expect("step")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);
