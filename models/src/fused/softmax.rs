//! A softmax over one row of f32 in place, for forward-only passes (the causal attention's
//! probabilities in inference): the scale, the maximum, e^(x - max), the sum and the division,
//! each a loop over 16 lanes that the compiler vectorises, with an exponential it can
//! vectorise too (`exp`; libm's `expf` is a call per value).
//!
//! Why: in batch-250 inference of the char LM, the scalar softmax and its `expf` calls took
//! about 30% of a pass (perf, 2026-12-02, AMD EPYC with AVX-512).
//!
//! The values differ from the generic softmax's by a few ulp (the exponential's rounding and
//! the sums' order), so training, whose numbers the baselines record, keeps the generic one.

/// Lanes of the partial maxima and sums: one AVX-512 register of f32.
const LANES: usize = 16;

/// `row <- softmax(row * scale)`. The loops are compiled for the baseline x86-64 target and
/// for AVX-512, chosen at run time, as in `conv_pool`.
pub(crate) fn softmax_f32(row: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked on the line above.
        return unsafe { softmax_avx512(row, scale) };
    }
    softmax_body(row, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn softmax_avx512(row: &mut [f32], scale: f32) {
    softmax_body(row, scale)
}

#[inline(always)]
fn softmax_body(row: &mut [f32], scale: f32) {
    if row.is_empty() {
        return;
    }
    let mut top = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (m, v) in top.iter_mut().zip(c.iter_mut()) {
            *v *= scale;
            *m = if *v > *m { *v } else { *m };
        }
    }
    let mut max = top.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in chunks.into_remainder() {
        *v *= scale;
        max = max.max(*v);
    }
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, v) in sums.iter_mut().zip(c.iter_mut()) {
            *v = exp(*v - max);
            *s += *v;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

/// e^x in f32 for x <= 88 (0 below -87: a softmax's e^(x - max) never needs the subnormal
/// range, and subnormals are slow on some CPUs). x = n ln 2 + r with n = round(x / ln 2) and
/// |r| <= ln 2 / 2, ln 2 split in two so that n ln 2 is exact; e^r by its Taylor series to
/// r^7 (the first term left out, r^8 / 8!, is below 1.5e-9, well under f32's half ulp of
/// 6e-8), in Horner form; then 2^n put into the exponent bits. The test checks it against
/// f64's exp over the range: at most 2 ulp.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75; // 0x3f31_7200: the high bits of ln 2, n · LN2_HI exact
    const LN2_LO: f32 = 1.428_606_8e-6; // ln 2 - LN2_HI
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer
    let low = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p * r + c;
    }
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if low {
        0.0
    } else {
        p * two_n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between an f32 and the f64 it approximates.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = (f32::from_bits(w.to_bits() + 1) - w) as f64;
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn exp_is_within_two_ulp_of_f64_exp_and_zero_below_its_range() {
        let mut worst: f64 = 0.0;
        let mut x = -87.0f32;
        while x <= 88.0 {
            worst = worst.max(ulps(exp(x), (x as f64).exp()));
            x += 0.000_37;
        }
        assert!(worst <= 2.0, "worst {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!((exp(-87.5), exp(-1e30), exp(f32::NEG_INFINITY)), (0.0, 0.0, 0.0));
    }

    #[test]
    fn softmax_matches_the_plain_softmax_in_f64_for_every_row_length() {
        for n in 1..=70 {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.9).collect();
            let mut got = x.clone();
            softmax_f32(&mut got, 0.125);
            let m = x.iter().map(|&v| v as f64 * 0.125).fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = x.iter().map(|&v| (v as f64 * 0.125 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            // f32 sums of up to 70 terms: a relative error of 1e-6 (about 8 ulp) at most.
            for (g, w) in got.iter().zip(&e) {
                assert!((*g as f64 - w / s).abs() <= 1e-6 * (w / s), "n {n}: {g} against {}", w / s);
            }
        }
    }
}
