//! This machine's f32 matrix-multiply rate on a backend: the "peak" that results compare the
//! workloads' achieved FLOP/s with, so a lab sees how far a chip is from its own limit.
//!
//! Method: square f32 GEMMs (n = 1024, 2n^3 FLOPs each) after one warm-up, repeated for the
//! given duration; the best single GEMM's rate is the peak (the best, not the mean, because
//! the question is what the hardware can do, and noise only ever slows a GEMM down).

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};

#[derive(Clone, Debug, serde::Serialize)]
pub struct Peak {
    pub flops_per_s: f64,
    pub median_flops_per_s: f64,
    pub n: usize,
    pub gemms: usize,
    pub threads: usize,
}

pub fn measure(dev: &Device, threads: usize, duration: Duration) -> candle_core::Result<Peak> {
    let n = 1024;
    let a = Tensor::ones((n, n), DType::F32, dev)?;
    let b = Tensor::ones((n, n), DType::F32, dev)?;
    a.matmul(&b)?; // warm-up: page in, spin up the thread pool
    dev.synchronize()?;
    let flops = 2.0 * (n as f64).powi(3);
    let mut rates = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration || rates.len() < 3 {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        dev.synchronize()?;
        rates.push(flops / t.elapsed().as_secs_f64());
        drop(c);
    }
    rates.sort_by(f64::total_cmp);
    Ok(Peak {
        flops_per_s: *rates.last().unwrap_or(&0.0),
        median_flops_per_s: rates[rates.len() / 2],
        n,
        gemms: rates.len(),
        threads,
    })
}
