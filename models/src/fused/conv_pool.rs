//! `max_pool2x2(relu(conv2d(x, w) + b))` as one forward-only op on the CPU, for passes that
//! need no gradient (inference and evaluation: `Net::infer`).
//!
//! Why: bench/peers/README.md, "2026-12-02 on the Intel Xeon VM". The separate ops write the
//! whole convolution output (250 x 16 x 28 x 28 values in the CNN's first stage, 12.5 MB) and
//! read it back to pool it. Here each image is zero-padded once, its convolution goes into a
//! buffer in padded width that stays in cache, and it is pooled from there, so only the pooled
//! quarter is written. The convolution is `direct::conv_f32` where it runs (f32 on AVX-512:
//! it reads the padded image in place; its sums run in another order than the GEMM's, so f32
//! answers differ from the separate ops' by a few ulp), else im2col + GEMM onto the bias as
//! `conv::Conv` computes it (bit-identical answers, as in f64). The ReLU and the maximum are
//! those of `conv::Conv` and `conv::MaxPool`. `tests/gradcheck_conv.rs` checks both cases.
//!
//! The op has no backward: when any operand tracks a gradient, or on other devices and
//! dtypes, `conv2d_relu_pool` runs the separate ops instead.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::conv::{max, run_jobs, Geometry};
use super::{forward3, fusable, matmul, Forward3, Real};

/// `max_pool2x2(relu(conv2d(x, w) + b))` for x (n, c, h, w) with h and w even, w (o, c, k, k)
/// with k odd, padding k / 2: one pass when nothing tracks a gradient (give it detached
/// tensors), else `conv2d` and `max_pool2x2`.
pub fn conv2d_relu_pool(x: &Tensor, w: &Tensor, b: &Tensor, padding: usize) -> Result<Tensor> {
    let tracked = x.track_op() || w.track_op() || b.track_op();
    let shapes = x.rank() == 4 && w.rank() == 4 && b.rank() == 1 && {
        let (dx, dw) = (x.dims(), w.dims());
        dw[2] == dw[3] && dw[2] % 2 == 1 && padding == dw[2] / 2 && dx[2] % 2 == 0 && dx[3] % 2 == 0
    };
    if !tracked && shapes && fusable(x) && x.dtype() == w.dtype() && x.dtype() == b.dtype() {
        return x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, ConvPool { pad: padding });
    }
    super::max_pool2x2(&super::conv2d(x, w, b, padding, true)?)
}

struct ConvPool {
    pad: usize,
}

impl Forward3 for ConvPool {
    fn fwd<T: Real>(&self, x: &[T], xl: &Layout, w: &[T], wl: &Layout, b: &[T], bl: &Layout) -> Result<Vec<T>> {
        let (g, (x, w, b)) = Geometry::operands((x, xl), (w, wl), (b, bl), self.pad)?;
        let p = Padded::new(g);
        let (ckk, zero) = (g.ckk(), T::from_f64(0.0));
        let mut out = vec![zero; g.n * g.o * g.hw() / 4];
        let jobs: Vec<&mut [T]> = out.chunks_mut(g.o * g.hw() / 4).collect();
        let offs = p.offsets();
        let scratch = || Scratch { xpad: vec![zero; p.len()], col: Vec::new(), y: Vec::with_capacity(g.o * p.cols()) };
        run_jobs(jobs, scratch, |s, i, pooled| {
            p.fill(&x[i * g.c * g.hw()..(i + 1) * g.c * g.hw()], &mut s.xpad);
            // The broadcast bias, written once per image (no zero-fill first).
            s.y.clear();
            b.iter().for_each(|&bias| s.y.extend(std::iter::repeat_n(bias, p.cols())));
            if !T::conv_direct(w, &offs, &s.xpad, &mut s.y, (g.o, p.cols())) {
                s.col.resize(ckk * p.cols(), zero); // only this path needs it
                p.im2col(&s.xpad, &mut s.col);
                let a = matmul::Operand { data: w, row_stride: ckk, col_stride: 1 };
                let c = matmul::Operand { data: &s.col[..], row_stride: p.cols(), col_stride: 1 };
                matmul::accumulate_serial(&mut s.y, (g.o, p.cols(), ckk), a, c)?;
            }
            pool_relu(&s.y, pooled, (g.h, g.w, p.wp));
            Ok(())
        })?;
        Ok(out)
    }
}

/// One worker's buffers, reused across its images.
struct Scratch<T> {
    xpad: Vec<T>,
    col: Vec<T>,
    y: Vec<T>,
}

/// One image zero-padded to (c, h + 2·pad, w + 2·pad), and the im2col matrix and the output in
/// padded width: output (o, oh, ow) sits at column oh·wp + ow, so that every im2col row is one
/// contiguous run of the padded image (columns ow >= w are computed and never read).
#[derive(Clone, Copy)]
struct Padded {
    g: Geometry,
    /// Padded width w + 2·pad.
    wp: usize,
    /// Values per padded plane, (h + 2·pad)·wp.
    plane: usize,
}

impl Padded {
    fn new(g: Geometry) -> Self {
        let wp = g.w + 2 * g.pad;
        Self { g, wp, plane: (g.h + 2 * g.pad) * wp }
    }

    /// Columns of the im2col matrix and of the output: h rows of wp.
    fn cols(&self) -> usize {
        self.g.h * self.wp
    }

    /// The padded image, plus k - 1 trailing zeros that the last rows' runs read into.
    fn len(&self) -> usize {
        self.g.c * self.plane + self.g.k - 1
    }

    /// Copies one image (c, h, w) into the interior of `xpad`, whose borders stay zero.
    fn fill<T: Real>(&self, x: &[T], xpad: &mut [T]) {
        let (g, wp) = (self.g, self.wp);
        for (src, dst) in x.chunks_exact(g.hw()).zip(xpad.chunks_exact_mut(self.plane)) {
            for (r, row) in src.chunks_exact(g.w).enumerate() {
                dst[(r + g.pad) * wp + g.pad..][..g.w].copy_from_slice(row);
            }
        }
    }

    /// Where im2col row (ci, ki, kj) starts in the padded image: ci·plane + ki·wp + kj.
    fn offsets(&self) -> Vec<usize> {
        let k = self.g.k;
        (0..self.g.ckk()).map(|r| r / (k * k) * self.plane + r / k % k * self.wp + r % k).collect()
    }

    /// col[(ci, ki, kj)][q] = xpad[ci][ki·wp + kj + q] for q < h·wp: for q = oh·wp + ow with
    /// ow < w that is x[ci][oh + ki - pad][ow + kj - pad], or a border zero.
    fn im2col<T: Real>(&self, xpad: &[T], col: &mut [T]) {
        let (k, n) = (self.g.k, self.cols());
        for (r, row) in col.chunks_exact_mut(n).enumerate() {
            let (ci, ki, kj) = (r / (k * k), r / k % k, r % k);
            row.copy_from_slice(&xpad[ci * self.plane + ki * self.wp + kj..][..n]);
        }
    }
}

/// Each plane of `y` (h rows of `wp` values, the first w of each real) through the ReLU (as
/// `conv::Conv` applies it) and the 2x2 maximum (as `conv::MaxPool` takes it) into `out`.
/// After the ReLU no value is NaN or -0, so taking the maximum of a window in another order
/// (rows first, which vectorises) gives the same value.
/// The loops are compiled twice, for the baseline x86-64 target (SSE2) and for AVX-512,
/// chosen at run time (the default build's SSE2 code took 15% of a batch-250 pass).
fn pool_relu<T: Real>(y: &[T], out: &mut [T], dims: (usize, usize, usize)) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked on the line above.
        return unsafe { pool_relu_avx512(y, out, dims) };
    }
    pool_relu_body(y, out, dims)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pool_relu_avx512<T: Real>(y: &[T], out: &mut [T], dims: (usize, usize, usize)) {
    pool_relu_body(y, out, dims)
}

#[inline(always)]
fn pool_relu_body<T: Real>(y: &[T], out: &mut [T], (h, w, wp): (usize, usize, usize)) {
    let (zero, ow, hp) = (T::from_f64(0.0), w / 2, wp / 2);
    let relu = |v: T| if v > zero { v } else { zero };
    // Columns in pairs over a whole plane first (wp is even, so no pair straddles two rows):
    // one long loop; then rows in pairs, keeping the w / 2 real columns of each.
    let mut pairs = vec![zero; h * hp];
    for (src, plane) in y.chunks_exact(h * wp).zip(out.chunks_exact_mut(h * w / 4)) {
        pairs.iter_mut().zip(src.chunks_exact(2)).for_each(|(p, q)| *p = max(relu(q[0]), relu(q[1])));
        for (row, two) in plane.chunks_exact_mut(ow).zip(pairs.chunks_exact(2 * hp)) {
            let (top, bottom) = two.split_at(hp);
            row.iter_mut().zip(top.iter().zip(bottom)).for_each(|(v, (&t, &b))| *v = max(t, b));
        }
    }
}

impl CustomOp3 for ConvPool {
    fn name(&self) -> &'static str {
        "fused-conv2d-relu-pool"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, _, h, w) = l1.shape().dims4()?;
        let shape = Shape::from((n, l2.dims()[0], h / 2, w / 2));
        Ok((forward3(self, "fused conv2d + pool: x, w and b", (s1, l1), (s2, l2), (s3, l3))?, shape))
    }

    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        candle_core::bail!("fused conv2d + pool is forward-only: conv2d_relu_pool runs it only on untracked tensors")
    }
}
