//! A direct convolution kernel for f32 on AVX-512: `y (o, n) += W (o, r) · B (r, n)` where row
//! `r` of B is the run `xpad[offs[r]..offs[r] + n]` of a padded image, read in place. It is the
//! GEMM of `conv_pool` without its im2col copy (12% of a batch-250 CNN pass, and the GEMM's
//! own packing of it another 4%: perf, 2026-12-02).
//!
//! Each output element is its bias plus the products in the order r = 0, 1, …, one fused
//! multiply-add each, so its rounding differs from the blocked GEMM's (by a few ulp).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output channels per block: 8 x 2 accumulators of 16 lanes stay in 16 of the 32 registers.
const OB: usize = 8;
/// Columns per block: two vectors of 16.
const QB: usize = 32;

/// `y += W · B` as above, when the CPU has AVX-512F and `o` is a multiple of 8; false (nothing
/// done) otherwise. Panics if a run lies outside `xpad`, or `w` or `y` are too short.
pub(super) fn conv_f32(w: &[f32], offs: &[usize], xpad: &[f32], y: &mut [f32], (o, n): (usize, usize)) -> bool {
    let r = offs.len();
    assert!(w.len() >= o * r && y.len() >= o * n, "direct conv: W or y too short");
    assert!(offs.iter().all(|&a| a + n <= xpad.len()), "direct conv: a run past the image");
    #[cfg(target_arch = "x86_64")]
    if o % OB == 0 && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present (checked above); every load and store is within the
        // slices (checked by the asserts: runs within xpad, W o·r values, y o·n values).
        unsafe { conv_avx512(w, offs, xpad, y, (o, n)) };
        return true;
    }
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn conv_avx512(w: &[f32], offs: &[usize], xpad: &[f32], y: &mut [f32], (o, n): (usize, usize)) {
    let r = offs.len();
    for o0 in (0..o).step_by(OB) {
        let mut q0 = 0;
        while q0 < n {
            let width = (n - q0).min(QB);
            let masks = [lanes(width.min(16)), lanes(width.saturating_sub(16))];
            // SAFETY (all the pointer reads and writes below): lanes outside `masks` are not
            // touched (so the second vector's pointer, wrapping_add, may point past a slice
            // when width <= 16), and the masked lanes lie within y's row o0 + i and each run.
            let mut acc = [[_mm512_setzero_ps(); 2]; OB];
            for (i, a) in acc.iter_mut().enumerate() {
                let row = y.as_ptr().add((o0 + i) * n + q0);
                a[0] = _mm512_maskz_loadu_ps(masks[0], row);
                a[1] = _mm512_maskz_loadu_ps(masks[1], row.wrapping_add(16));
            }
            for (k, &off) in offs.iter().enumerate() {
                let src = xpad.as_ptr().add(off + q0);
                let b = [_mm512_maskz_loadu_ps(masks[0], src), _mm512_maskz_loadu_ps(masks[1], src.wrapping_add(16))];
                for (i, a) in acc.iter_mut().enumerate() {
                    let wv = _mm512_set1_ps(*w.get_unchecked((o0 + i) * r + k));
                    a[0] = _mm512_fmadd_ps(wv, b[0], a[0]);
                    a[1] = _mm512_fmadd_ps(wv, b[1], a[1]);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                let row = y.as_mut_ptr().add((o0 + i) * n + q0);
                _mm512_mask_storeu_ps(row, masks[0], a[0]);
                _mm512_mask_storeu_ps(row.wrapping_add(16), masks[1], a[1]);
            }
            q0 += width;
        }
    }
}

/// The mask of the first `count` (at most 16) lanes.
#[cfg(target_arch = "x86_64")]
fn lanes(count: usize) -> __mmask16 {
    ((1u32 << count) - 1) as __mmask16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the plain sum (in f64) on shapes with a column tail (37 = 32 + 5) and two blocks
    /// of channels, runs at odd offsets, and a bias already in y; or, without AVX-512, y is
    /// left as it was. A channel count that is not a multiple of 8 is refused.
    #[test]
    fn direct_conv_matches_the_plain_sum() {
        let (o, n, offs) = (16, 37, vec![0, 1, 2, 40, 41, 42, 80, 81, 83]);
        let r = offs.len();
        let wave = |i: usize, s: f32| ((i as f32 * s).sin() * 2.0).round() / 4.0 + 0.125;
        let w: Vec<f32> = (0..o * r).map(|i| wave(i, 0.7)).collect();
        let xpad: Vec<f32> = (0..83 + n).map(|i| wave(i, 1.3)).collect();
        let bias: Vec<f32> = (0..o * n).map(|i| (i / n) as f32).collect();
        let mut y = bias.clone();
        if !conv_f32(&w, &offs, &xpad, &mut y, (o, n)) {
            assert_eq!(y, bias);
            return;
        }
        for (i, &got) in y.iter().enumerate() {
            let (oc, q) = (i / n, i % n);
            let want: f64 = bias[i] as f64
                + offs.iter().enumerate().map(|(k, &a)| w[oc * r + k] as f64 * xpad[a + q] as f64).sum::<f64>();
            assert!((got as f64 - want).abs() < 1e-5, "y[{oc}][{q}] = {got}, want {want}");
        }
        assert!(!conv_f32(&w[..12 * r], &offs, &xpad, &mut y[..12 * n], (12, n)));
    }
}
