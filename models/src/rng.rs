//! Seeded randomness. candle's CPU device cannot be seeded (`Device::Cpu.set_seed()` errors)
//! and `VarBuilder` initialises from an unseeded RNG, so every random number effbench's models
//! use comes from here: the same seed gives the same weights, the same shuffles and the same
//! samples-to-target.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub type SeededRng = ChaCha8Rng;

/// Independent streams per purpose, so that (for example) changing the batch size does not
/// change the initial weights.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Init = 1,
    Shuffle = 2,
    Selection = 3,
    Data = 4,
}

pub fn rng(seed: u64, stream: Stream) -> SeededRng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream as u64);
    r
}

/// `n` values uniform in [-bound, bound).
pub fn uniform(r: &mut SeededRng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| r.gen_range(-bound..bound)).collect()
}

/// Fisher-Yates shuffle of `0..n`.
pub fn permutation(r: &mut SeededRng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = r.gen_range(0..=i);
        p.swap(i, j);
    }
    p
}

/// A standard normal deviate (Box-Muller), for generated data.
pub fn normal(r: &mut SeededRng) -> f32 {
    let u1: f32 = r.gen_range(f32::EPSILON..1.0);
    let u2: f32 = r.gen::<f32>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_same_numbers() {
        let a = uniform(&mut rng(7, Stream::Init), 5, 1.0);
        let b = uniform(&mut rng(7, Stream::Init), 5, 1.0);
        let c = uniform(&mut rng(7, Stream::Shuffle), 5, 1.0);
        let d = uniform(&mut rng(8, Stream::Init), 5, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(&mut rng(1, Stream::Shuffle), 100);
        assert_ne!(p, (0..100).collect::<Vec<_>>());
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
