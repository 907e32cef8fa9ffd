//! Procedural "machine hum" for the anomaly-detection workload, generated from a fixed seed so
//! every machine sees the same bytes without shipping a data file.
//!
//! A frame vector is 5 consecutive frames x 128 log-mel-like bins (640 values, MLPerf Tiny's
//! anomaly-detection input). Each of four machines hums at its own fundamental (in bins) with
//! its own harmonic profile; normal frames jitter the fundamental by ±1.5%, the harmonic
//! amplitudes by ±15% and add noise. Anomalous frames come from a faulty machine: its
//! fundamental is off by 5-10% or one harmonic is 2.5-4x louder than normal. Every vector is
//! standardised (mean 0, variance 1) so that loudness alone does not reveal an anomaly and an
//! untrained autoencoder scores near chance.

use crate::rng::{self, SeededRng, Stream};
use rand::Rng;

pub const BINS: usize = 128;
pub const FRAMES: usize = 5;
pub const DIM: usize = BINS * FRAMES;
/// The generator's seed: fixed, part of the workload's definition (not the run's seed).
pub const DATA_SEED: u64 = 0x6875_6d5f_3230_3236;

const FUNDAMENTALS: [f32; 4] = [5.0, 7.5, 10.0, 13.5];
const HARMONICS: usize = 8;

pub struct HumSet {
    /// Rows of DIM values.
    pub train: Vec<f32>,
    pub test: Vec<f32>,
    /// One per test row: true when anomalous.
    pub test_anomalous: Vec<bool>,
}

fn profile(machine: usize) -> [f32; HARMONICS] {
    let mut p = [0f32; HARMONICS];
    for (h, a) in p.iter_mut().enumerate() {
        // A different slope per machine, and a resonance at a machine-specific harmonic.
        let slope = 0.25 + 0.1 * machine as f32;
        *a = (-slope * h as f32).exp() * if h == (machine + 2) % HARMONICS { 1.6 } else { 1.0 };
    }
    p
}

fn frame_vector(r: &mut SeededRng, machine: usize, anomalous: bool) -> Vec<f32> {
    let mut f0 = FUNDAMENTALS[machine] * (1.0 + r.gen_range(-0.015..0.015));
    let mut amps = profile(machine);
    for a in amps.iter_mut() {
        *a *= 1.0 + r.gen_range(-0.15..0.15);
    }
    if anomalous {
        if r.gen_bool(0.5) {
            let shift = r.gen_range(0.05..0.10);
            f0 *= if r.gen_bool(0.5) { 1.0 + shift } else { 1.0 - shift };
        } else {
            let h = r.gen_range(0..HARMONICS);
            amps[h] *= r.gen_range(2.5..4.0);
        }
    }
    let mut v = Vec::with_capacity(DIM);
    for _ in 0..FRAMES {
        let level = 1.0 + 0.05 * rng::normal(r);
        for bin in 0..BINS {
            let mut e = 0.02;
            for (h, a) in amps.iter().enumerate() {
                let centre = f0 * (h + 1) as f32;
                let d = (bin as f32 - centre) / 1.2;
                e += a * level * (-0.5 * d * d).exp();
            }
            let noisy = e * (1.0 + 0.1 * rng::normal(r)).abs();
            v.push(noisy.max(1e-4).ln());
        }
    }
    let mean = v.iter().sum::<f32>() / DIM as f32;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / DIM as f32;
    let sd = var.sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x = (*x - mean) / sd);
    v
}

/// 4,000 normal training vectors; 500 normal and 500 anomalous test vectors, interleaved.
pub fn generate() -> HumSet {
    let mut r = rng::rng(DATA_SEED, Stream::Data);
    let mut train = Vec::with_capacity(4000 * DIM);
    for i in 0..4000 {
        train.extend(frame_vector(&mut r, i % 4, false));
    }
    let mut test = Vec::with_capacity(1000 * DIM);
    let mut test_anomalous = Vec::with_capacity(1000);
    for i in 0..1000 {
        let anomalous = i % 2 == 1;
        test.extend(frame_vector(&mut r, (i / 2) % 4, anomalous));
        test_anomalous.push(anomalous);
    }
    HumSet { train, test, test_anomalous }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generation_is_deterministic_and_standardised() {
        let a = super::generate();
        let b = super::generate();
        assert_eq!(a.train.len(), 4000 * super::DIM);
        assert_eq!(a.test_anomalous.iter().filter(|&&x| x).count(), 500);
        assert_eq!(a.train[..1000], b.train[..1000]);
        let row = &a.test[..super::DIM];
        let mean: f32 = row.iter().sum::<f32>() / super::DIM as f32;
        assert!(mean.abs() < 1e-4);
    }
}
