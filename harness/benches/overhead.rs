//! Harness overhead: the same training run (fmnist-mlp-train, baseline recipe, seed 0, shipped
//! data, so the same samples-to-target every time) bare, and inside a meter window with the
//! meter sampling the CPU estimate at 10 Hz and at 1 kHz, as `effbench run` does. The goal is
//! under 1% at 10 Hz. Interleave-free by design: criterion runs the variants one after the
//! other, so run it on a quiet machine and repeat.
//!
//! `cargo bench -p effbench --bench overhead`

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use effbench::meter::Meter;
use effbench::sensor::{self, Sensor};
use effbench_models::data::DataConfig;
use effbench_models::{train, WorkloadSpec};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn overhead(c: &mut Criterion) {
    let spec = WorkloadSpec::get("fmnist-mlp-train").expect("workload");
    let recipe = spec.recipe("baseline").expect("recipe").recipe;
    let target = spec.target(&recipe);
    effbench::threads::set(spec.threads);
    let task = spec.build_task(&DataConfig::shipped_only()).expect("data");
    let dev = Device::Cpu;
    let once = || {
        let net = spec.build_net(0, &dev).expect("net");
        let out = train::train(task.as_ref(), net.as_ref(), &recipe, target, 0, &dev, &mut |_| {}).expect("train");
        assert!(out.reached);
        out.samples_to_target
    };
    let mut group = c.benchmark_group("harness_overhead");
    group.sample_size(10);
    group.bench_function("bare", |b| b.iter(once));
    for hz in [10.0, 1000.0] {
        let sensors: Vec<Box<dyn Sensor>> = sensor::discover_default();
        let meter = Meter::start(sensors, hz).expect("meter");
        group.bench_function(format!("metered-{hz}hz"), |b| {
            b.iter(|| {
                let begin = meter.mark();
                let s = once();
                let end = meter.mark();
                (s, meter.window(&begin, &end).total)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
