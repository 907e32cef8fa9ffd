//! Cost of the meter's hot paths: one `read()` of the CPU estimate (what the sampler thread
//! pays per sample for it) and one `mark()` (what a run pays at each window edge) on a meter
//! with the estimate and a fake sensor. The sampler's budget is 1% of one core at 10 Hz, i.e.
//! 1 ms per sample; these should be microseconds.
//!
//! Run with `cargo bench -p effbench --bench meter`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use effbench::meter::{Meter, DEFAULT_SAMPLE_HZ};
use effbench::sensor::estimate::CpuEstimate;
use effbench::sensor::fake::FakePower;
use effbench::sensor::Sensor;
use effbench::units::Watts;

fn estimate_read(c: &mut Criterion) {
    let mut estimate = CpuEstimate::from_system();
    c.bench_function("estimate_read", |b| b.iter(|| black_box(estimate.read().ok())));
}

fn meter_mark(c: &mut Criterion) {
    // Every mark appends a trace row, so each measurement batch gets a fresh meter (started
    // outside the timed region) and memory stays bounded by one batch.
    c.bench_function("meter_mark", |b| {
        b.iter_custom(|iters| {
            let sensors: Vec<Box<dyn Sensor>> =
                vec![Box::new(CpuEstimate::from_system()), Box::new(FakePower::new("gpu:0", Watts(100.0)))];
            let Ok(meter) = Meter::start(sensors, DEFAULT_SAMPLE_HZ) else {
                panic!("the CPU estimate and a fake sensor always start");
            };
            let began = Instant::now();
            for _ in 0..iters {
                black_box(meter.mark());
            }
            began.elapsed()
        })
    });
}

criterion_group!(benches, estimate_read, meter_mark);
criterion_main!(benches);
