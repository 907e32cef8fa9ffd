//! Summary statistics over repeats: median, mean and a seeded percentile-bootstrap 95%
//! interval of the median. The RNG is a tiny SplitMix64, so intervals are reproducible from
//! the seed stored in the result and no RNG crate is needed.

use serde::{Deserialize, Serialize};

pub mod reduction;
pub mod student_t;

pub(crate) use reduction::{fnv1a, mean, reduction_interval, Sides};

/// Number of bootstrap resamples for [`Summary::of`].
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): 64 bits of state, passes BigCrush, plenty for resampling indices.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n` (`n > 0`), by Lemire's multiply-shift; the bias is below
    /// n / 2^64, irrelevant for resampling.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Median of `values`, `None` when empty or when any value is NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    Some(median_in_place(&mut sorted))
}

/// Median of a non-empty slice with no NaN; reorders the slice.
fn median_in_place(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Value at quantile `q` in [0, 1] of a sorted, non-empty slice, interpolating linearly between
/// order statistics.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    if sorted[lo] == sorted[hi] {
        return sorted[lo]; // also keeps two equal infinities from giving inf - inf = NaN
    }
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Percentile-bootstrap `level` interval (e.g. 0.95) of `statistic` over `values`: draws
/// `resamples` samples of the same size with replacement from a [`SplitMix64`] seeded with
/// `seed`, applies `statistic` to each (it may reorder its argument) and returns the
/// `(1 - level) / 2` and `(1 + level) / 2` quantiles. `None` when `values` is empty or
/// `resamples` is 0. Cost: `resamples` × (n + the statistic's cost); one buffer, reused.
pub fn bootstrap_interval(
    values: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
    mut statistic: impl FnMut(&mut [f64]) -> f64,
) -> Option<[f64; 2]> {
    if values.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut buf = vec![0.0; values.len()];
    let mut stats = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in buf.iter_mut() {
            *slot = values[rng.below(values.len())];
        }
        stats.push(statistic(&mut buf));
    }
    stats.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Some([quantile_sorted(&stats, tail), quantile_sorted(&stats, 1.0 - tail)])
}

/// The interval [`bootstrap_interval`] gives for the median, bit for bit (the same draws from
/// the same seed, the same medians, the same quantiles), without sorting anything per resample:
/// each draw counts against the rank of the value drawn, a resample's median is read off those
/// counts, and the quantiles off how often each possible median occurred. O(resamples × n)
/// instead of O(resamples × n log n + resamples log resamples): a report of 10,000 results
/// computes about 12 of these per result. Up to 64 values; more go through
/// [`bootstrap_interval`] (their cost is the draws either way).
pub fn bootstrap_median_interval(values: &[f64], resamples: usize, level: f64, seed: u64) -> Option<[f64; 2]> {
    let n = values.len();
    if n > 64 || n == 0 || resamples == 0 {
        return bootstrap_interval(values, resamples, level, seed, median_in_place);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let sorted: Vec<f64> = order.iter().map(|&i| values[i]).collect();
    let mut rank = vec![0usize; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    // The ranks at the median's positions in a sorted resample (one position for odd n).
    let (p, q) = if n % 2 == 1 { (n / 2, n / 2) } else { (n / 2 - 1, n / 2) };
    let (mut hits, mut medians) = (vec![0u32; n], vec![0u32; n * n]);
    let mut rng = SplitMix64::new(seed);
    for _ in 0..resamples {
        for _ in 0..n {
            hits[rank[rng.below(n)]] += 1;
        }
        let (mut below, mut at_p, mut at_q) = (0usize, None, None);
        for (r, h) in hits.iter_mut().enumerate() {
            below += *h as usize;
            *h = 0;
            if at_p.is_none() && below > p {
                at_p = Some(r);
            }
            if at_q.is_none() && below > q {
                at_q = Some(r);
            }
        }
        let (a, b) = (at_p.unwrap_or(n - 1), at_q.unwrap_or(n - 1));
        medians[a * n + b] += 1;
    }
    // The distinct medians in the order sorting them would give, with how often each occurred.
    let mut counted: Vec<(f64, u32)> = (0..n * n)
        .filter(|&k| medians[k] > 0)
        .map(|k| {
            let (a, b) = (k / n, k % n);
            let m = if n % 2 == 1 { sorted[a] } else { (sorted[a] + sorted[b]) / 2.0 };
            (m, medians[k])
        })
        .collect();
    counted.sort_by(|x, y| x.0.total_cmp(&y.0));
    let tail = (1.0 - level) / 2.0;
    Some([quantile_counted(&counted, resamples, tail), quantile_counted(&counted, resamples, 1.0 - tail)])
}

/// [`quantile_sorted`] of the `total` values that `counted` lists in order as (value, times).
fn quantile_counted(counted: &[(f64, u32)], total: usize, q: f64) -> f64 {
    let at = |i: usize| {
        let mut seen = 0usize;
        for &(v, c) in counted {
            seen += c as usize;
            if i < seen {
                return v;
            }
        }
        counted[counted.len() - 1].0
    };
    let pos = q.clamp(0.0, 1.0) * (total - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (a, b) = (at(lo), at(hi));
    if a == b {
        return a;
    }
    a + (b - a) * (pos - lo as f64)
}

/// How far a new run's mean lies from a history of run means, as an interval of the shift
/// `candidate - mean(history)` at `level` (e.g. 0.95): the t prediction interval
/// `± t(N-1) · s · sqrt(1 + 1/N)`, where `s` is the standard deviation of the N history means.
/// The candidate's own run mean varies between runs as the history's did, so `s` covers the
/// between-run and the within-run noise together; no interval over one run's repeats can see
/// the former. Returns `(mean(history), [lo, hi])`; `None` with fewer than 2 history means or a
/// non-finite value.
pub fn shift_interval(history: &[f64], candidate: f64, level: f64) -> Option<(f64, [f64; 2])> {
    let n = history.len();
    if n < 2 || !candidate.is_finite() || history.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mean = history.iter().sum::<f64>() / n as f64;
    let var = history.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = student_t::quantile((1.0 + level) / 2.0, (n - 1) as f64) * (var * (1.0 + 1.0 / n as f64)).sqrt();
    let shift = candidate - mean;
    Some((mean, [shift - half, shift + half]))
}

/// Informational summary of one metric over repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub median: f64,
    pub mean: f64,
    /// Percentile-bootstrap 95% interval of the median ([`BOOTSTRAP_RESAMPLES`] resamples).
    pub ci95: [f64; 2],
    pub n: usize,
}

impl Summary {
    /// `None` for an empty slice or one containing a non-finite value (a NaN would make every
    /// statistic meaningless; the caller decides what a missing measurement means). One value
    /// gives the degenerate interval `[x, x]`.
    pub fn of(values: &[f64], seed: u64) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let median = median(values)?;
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let ci95 = if values.len() == 1 {
            [median, median]
        } else {
            bootstrap_median_interval(values, BOOTSTRAP_RESAMPLES, 0.95, seed)?
        };
        Some(Summary { median, mean, ci95, n: values.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_and_survive_infinities() {
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 5.0], 0.5), 2.5);
        assert_eq!(quantile_sorted(&[1.0, f64::INFINITY, f64::INFINITY], 0.9), f64::INFINITY);
        assert_eq!(quantile_sorted(&[f64::NEG_INFINITY, f64::NEG_INFINITY, 0.0], 0.1), f64::NEG_INFINITY);
    }

    #[test]
    fn shift_interval_is_the_t_prediction_interval() {
        // History means 9, 10, 11: mean 10, s = 1, t(2, 0.975) = 4.3027, sqrt(1 + 1/3).
        let (mean, [lo, hi]) = shift_interval(&[9.0, 10.0, 11.0], 12.0, 0.95).unwrap();
        let half = 4.302_652_7 * (4.0f64 / 3.0).sqrt();
        assert_eq!(mean, 10.0);
        assert!((lo - (2.0 - half)).abs() < 1e-6 && (hi - (2.0 + half)).abs() < 1e-6, "{lo} {hi}");
        // A history without spread (deterministic data use) gives a point.
        assert_eq!(shift_interval(&[5.0; 4], 5.0, 0.95), Some((5.0, [0.0, 0.0])));
        assert_eq!(shift_interval(&[5.0], 5.0, 0.95), None);
        assert_eq!(shift_interval(&[5.0, f64::NAN], 5.0, 0.95), None);
    }

    #[test]
    fn known_medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn summary_of_empty_or_non_finite_is_none() {
        assert_eq!(Summary::of(&[], 1), None);
        assert_eq!(Summary::of(&[1.0, f64::INFINITY], 1), None);
    }

    #[test]
    fn single_value_gives_degenerate_interval() {
        let s = Summary::of(&[4.2], 9).unwrap();
        assert_eq!(s.ci95, [4.2, 4.2]);
        assert_eq!((s.median, s.mean, s.n), (4.2, 4.2, 1));
    }

    #[test]
    fn interval_contains_median_and_is_within_range() {
        let values = [10.2, 9.8, 10.5, 10.1, 9.9, 10.0, 10.3];
        let s = Summary::of(&values, 42).unwrap();
        assert_eq!(s.median, 10.1);
        assert!((s.mean - 10.114285714285714).abs() < 1e-12);
        assert!(s.ci95[0] <= s.median && s.median <= s.ci95[1], "{s:?}");
        assert!(s.ci95[0] >= 9.8 && s.ci95[1] <= 10.5, "{s:?}");
        assert!(s.ci95[0] < s.ci95[1], "seven distinct values give a real interval");
    }

    #[test]
    fn same_seed_same_interval_other_seed_may_differ() {
        let values = [1.0, 5.0, 2.0, 8.0, 3.0, 9.0];
        let a = Summary::of(&values, 7).unwrap();
        let b = Summary::of(&values, 7).unwrap();
        assert_eq!(a, b);
        let intervals: Vec<[f64; 2]> =
            (0..20).map(|seed| bootstrap_interval(&values, 200, 0.95, seed, median_in_place).unwrap()).collect();
        assert!(intervals.iter().any(|i| *i != intervals[0]), "the seed must drive the resampling");
    }

    #[test]
    fn the_counting_median_bootstrap_is_the_sorting_one_bit_for_bit() {
        // Odd and even sizes, ties, signed zeros, a wide range; every seed's draws must give the
        // very interval the generic bootstrap gives (Summary::of's figures did not change).
        let mut rng = SplitMix64::new(99);
        for n in 1..=20usize {
            for seed in 0..25u64 {
                let values: Vec<f64> = (0..n)
                    .map(|_| match rng.below(5) {
                        0 => 0.0,
                        1 => -0.0,
                        2 => (rng.below(3) as f64) * 1.5,
                        _ => (rng.next_u64() >> 11) as f64 * 1e-10 - 4e5,
                    })
                    .collect();
                for resamples in [1, 2, 999, 2000] {
                    let slow = bootstrap_interval(&values, resamples, 0.95, seed, median_in_place).unwrap();
                    let fast = bootstrap_median_interval(&values, resamples, 0.95, seed).unwrap();
                    assert_eq!(slow.map(f64::to_bits), fast.map(f64::to_bits), "{values:?} seed {seed} r {resamples}");
                }
            }
        }
        let many: Vec<f64> = (0..70).map(|i| (i * 37 % 11) as f64).collect();
        assert_eq!(
            bootstrap_median_interval(&many, 500, 0.9, 3),
            bootstrap_interval(&many, 500, 0.9, 3, median_in_place)
        );
    }

    #[test]
    fn splitmix_reference_values_and_uniform_indices() {
        // First outputs for seed 0, as in the reference implementation (Vigna, splitmix64.c).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[rng.below(4)] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }
}
