//! Joules per iteration with criterion, through `effbench::bench::EnergyMeasurement`: the
//! example for anyone who wants energy, not time, from a criterion bench.
//!
//! `cargo bench -p effbench --features criterion --bench energy`

use std::hint::black_box;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use effbench::bench::EnergyMeasurement;

fn energy() -> Criterion<EnergyMeasurement> {
    let m = EnergyMeasurement::discover().expect("energy meter");
    eprintln!("energy source provenance: {}", m.provenance());
    Criterion::default().with_measurement(m).measurement_time(std::time::Duration::from_secs(5))
}

fn matmul(c: &mut Criterion<EnergyMeasurement>) {
    let a = Tensor::ones((256, 256), DType::F32, &Device::Cpu).expect("tensor");
    let mut g = c.benchmark_group("energy");
    g.throughput(Throughput::Elements(2 * 256 * 256 * 256)); // FLOPs per iteration
    g.bench_function("matmul-256-f32", |b| b.iter(|| black_box(a.matmul(&a).expect("matmul"))));
    g.finish();
}

criterion_group! { name = benches; config = energy(); targets = matmul }
criterion_main!(benches);
