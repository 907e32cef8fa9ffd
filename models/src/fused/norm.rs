//! Layer normalisation over the last dimension as one CPU op each way.
//!
//! Why: candle-nn's `layer_norm_slow` (the one with a backward) is nine ops forward, each a
//! pass over the activations and a new buffer, and about twenty backward. Here the forward is
//! one pass per row that keeps the row's mean and 1/σ for the backward, and the backward is
//! one pass per row for the input gradient, with the gain and shift gradients summed in the
//! same pass.
//!
//! The math is `layer_norm_slow`'s: μ = mean(x), σ² = mean((x - μ)²), x̂ = (x - μ) / sqrt(σ² +
//! ε), y = x̂·g + s. Backward, with ĝ = dy·g: dx = (ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)) / sqrt(σ² + ε),
//! dg = Σ_rows dy·x̂, ds = Σ_rows dy.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::{contiguous, fault, fusable, Fault, Real};

/// LayerNorm of `x` (any rank, normalised over the last dimension of d) with gain and shift
/// of d. CPU f32/f64 as one fused op; elsewhere candle-nn's `layer_norm_slow`.
pub fn layer_norm(x: &Tensor, gain: &Tensor, shift: &Tensor, eps: f32) -> Result<Tensor> {
    let d = x.dims().last().copied().unwrap_or(0);
    let same = gain.dtype() == x.dtype() && shift.dtype() == x.dtype();
    if fusable(x) && same && x.rank() >= 1 && gain.dims() == [d] && shift.dims() == [d] && d > 0 {
        let op = LayerNormOp { eps: eps as f64, mean_term: !fault(Fault::NormMeanSkipped), stats: OnceLock::new() };
        return x.contiguous()?.apply_op3(&gain.contiguous()?, &shift.contiguous()?, op);
    }
    candle_nn::ops::layer_norm_slow(x, gain, shift, eps)
}

struct LayerNormOp {
    eps: f64,
    /// Subtract mean(ĝ) in the input gradient (false only under `Fault`).
    mean_term: bool,
    /// Per row: the mean, then per row 1/sqrt(σ² + ε), kept by the forward for the backward.
    stats: OnceLock<CpuStorage>,
}

/// One row's mean and sqrt(σ² + ε), summed in `T` in the order `layer_norm_slow` does
/// (sum, then divide; the centred squares, then divide).
fn row_stats<T: Real>(row: &[T], eps: f64) -> (T, T) {
    let n = T::from_f64(row.len() as f64);
    let mean = row.iter().fold(T::from_f64(0.0), |a, &v| a + v) / n;
    let var = row.iter().fold(T::from_f64(0.0), |a, &v| a + (v - mean) * (v - mean)) / n;
    (mean, T::from_f64((var + T::from_f64(eps)).to_f64().sqrt()))
}

fn forward<T: Real>(x: &[T], g: &[T], s: &[T], eps: f64) -> (Vec<T>, Vec<T>) {
    let d = g.len();
    let rows = x.len() / d;
    let mut y = Vec::with_capacity(x.len());
    let mut stats = vec![T::from_f64(0.0); 2 * rows];
    for (r, row) in x.chunks_exact(d).enumerate() {
        // Divided by σ, as `layer_norm_slow` and the ONNX export's decomposition do (multiplying
        // by 1/σ moved the char LM's outputs 1.4e-4 (relative) from onnxruntime's).
        let (mean, sd) = row_stats(row, eps);
        stats[r] = mean;
        stats[rows + r] = T::from_f64(1.0) / sd;
        y.extend(row.iter().zip(g).zip(s).map(|((&v, &g), &s)| (v - mean) / sd * g + s));
    }
    (y, stats)
}

/// dx (rows·d), then dg (d), then ds (d), in one buffer.
fn backward<T: Real>(x: &[T], g: &[T], dy: &[T], stats: &[T], mean_term: bool) -> Vec<T> {
    let d = g.len();
    let rows = x.len() / d;
    let zero = T::from_f64(0.0);
    let inv_d = T::from_f64(1.0 / d as f64);
    let mut out = vec![zero; x.len() + 2 * d];
    let (dx, dgs) = out.split_at_mut(x.len());
    let (dg, ds) = dgs.split_at_mut(d);
    let mut xhat = vec![zero; d];
    for r in 0..rows {
        let (mean, rstd) = (stats[r], stats[rows + r]);
        let (xr, dyr) = (&x[r * d..(r + 1) * d], &dy[r * d..(r + 1) * d]);
        let (mut sum_gy, mut sum_gyx) = (zero, zero);
        for j in 0..d {
            let xh = (xr[j] - mean) * rstd;
            xhat[j] = xh;
            let gy = dyr[j] * g[j];
            sum_gy += gy;
            sum_gyx += gy * xh;
            dg[j] += dyr[j] * xh;
            ds[j] += dyr[j];
        }
        let m1 = if mean_term { sum_gy * inv_d } else { zero };
        let m2 = sum_gyx * inv_d;
        for (j, o) in dx[r * d..(r + 1) * d].iter_mut().enumerate() {
            *o = (dyr[j] * g[j] - m1 - xhat[j] * m2) * rstd;
        }
    }
    out
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
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
        let (y, stats) = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(g), CpuStorage::F32(s)) => {
                let (x, g, s) = (
                    contiguous(x, l1, "layer norm")?,
                    contiguous(g, l2, "layer norm")?,
                    contiguous(s, l3, "layer norm")?,
                );
                let (y, st) = forward(x, g, s, self.eps);
                (CpuStorage::F32(y), CpuStorage::F32(st))
            }
            (CpuStorage::F64(x), CpuStorage::F64(g), CpuStorage::F64(s)) => {
                let (x, g, s) = (
                    contiguous(x, l1, "layer norm")?,
                    contiguous(g, l2, "layer norm")?,
                    contiguous(s, l3, "layer norm")?,
                );
                let (y, st) = forward(x, g, s, self.eps);
                (CpuStorage::F64(y), CpuStorage::F64(st))
            }
            _ => candle_core::bail!("fused layer norm: x, gain and shift must all be f32 or all f64"),
        };
        if self.stats.set(stats).is_err() {
            candle_core::bail!("fused layer norm: one op instance runs forward once");
        }
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _s: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(stats) = self.stats.get() else { candle_core::bail!("fused layer norm: backward before forward") };
        let op = LayerNormGrad { stats: stats.clone(), mean_term: self.mean_term };
        let all = x.apply_op3_no_bwd(g, &dy.contiguous()?, &op)?;
        let (n, d) = (x.elem_count(), g.elem_count());
        let dx = all.narrow(0, 0, n)?.reshape(x.shape())?;
        Ok((Some(dx), Some(all.narrow(0, n, d)?), Some(all.narrow(0, n + d, d)?)))
    }
}

/// The backward pass as an op of (x, gain, dy): dx, dg and ds packed in one rank-1 tensor.
struct LayerNormGrad {
    stats: CpuStorage,
    mean_term: bool,
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "fused-layer-norm-grad"
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
        let what = "layer norm grad";
        let out = match (s1, s2, s3, &self.stats) {
            (CpuStorage::F32(x), CpuStorage::F32(g), CpuStorage::F32(dy), CpuStorage::F32(st)) => {
                let (x, g, dy) = (contiguous(x, l1, what)?, contiguous(g, l2, what)?, contiguous(dy, l3, what)?);
                CpuStorage::F32(backward(x, g, dy, st, self.mean_term))
            }
            (CpuStorage::F64(x), CpuStorage::F64(g), CpuStorage::F64(dy), CpuStorage::F64(st)) => {
                let (x, g, dy) = (contiguous(x, l1, what)?, contiguous(g, l2, what)?, contiguous(dy, l3, what)?);
                CpuStorage::F64(backward(x, g, dy, st, self.mean_term))
            }
            _ => candle_core::bail!("fused layer norm grad: f32 or f64 tensors of one dtype"),
        };
        if l3.shape() != l1.shape() {
            candle_core::bail!("fused layer norm grad: dy {:?} vs x {:?}", l3.dims(), l1.dims());
        }
        Ok((out, Shape::from(l1.shape().elem_count() + 2 * l2.shape().elem_count())))
    }
}
