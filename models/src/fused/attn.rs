//! Causal multi-head self-attention's core, softmax(Q Kᵀ · scale + causal mask) V, as one CPU
//! op each way.
//!
//! Why: candle's version is a split of each projection into heads (reshape, transpose and a
//! copy each), two batched matmuls, the scale, the mask add, a softmax built from five ops,
//! the merge of the heads (a transpose and a copy), and about twice that backward. Here the
//! heads are read in place from the (batch, t, d) projections (head h is columns h·dh..
//! (h+1)·dh), per batch and head: S = Q Kᵀ (one GEMM), the scale and a softmax over the
//! entries on and below the diagonal, Y = P V (one GEMM) written into head h's columns. The
//! probabilities P are kept for the backward: dV = Pᵀ dY, dP = dY Vᵀ, dS = P ⊙ (dP -
//! rowsum(dP ⊙ P)) · scale, dQ = dS K, dK = dSᵀ Q (four GEMMs and one pass).
//!
//! The math is the unfused ops': an entry above the diagonal gets exactly zero probability
//! there too (its score + -1e9 is exp'd to 0 in f32 and f64), so skipping it gives the same
//! softmax; only the order of floating-point operations changes. The GEMMs are over the full
//! t x t scores, as the unfused ops' (and the FLOP count, `charlm::attention_flops`).
//!
//! Threads: the batch is split into as many contiguous parts as candle's thread count
//! (`RAYON_NUM_THREADS`), one scoped thread each, with a single-threaded GEMM inside (the
//! matrices are t x dh, too small to split further).

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

use super::matmul::{self, Operand};
use super::{contiguous, fault, fusable, Fault, Real};

/// q, k, v: (batch, t, d), heads of d / `heads` columns each -> (batch, t, d). `mask` is the
/// additive causal mask ((≥ t, ≥ t): 0 on and below the diagonal, -1e9 above) that the
/// unfused path (candle's ops: other devices and dtypes) adds; the fused path skips the
/// entries it masks.
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, mask: &Tensor) -> Result<Tensor> {
    let (b, t, d) = q.dims3()?;
    if heads == 0 || d % heads != 0 || k.dims() != q.dims() || v.dims() != q.dims() {
        candle_core::bail!("attention: q {:?}, k {:?}, v {:?} with {heads} heads", q.dims(), k.dims(), v.dims());
    }
    let scale = 1.0 / ((d / heads) as f64).sqrt();
    let one_dtype = k.dtype() == q.dtype() && v.dtype() == q.dtype();
    if fusable(q) && one_dtype {
        // No operand tracked (inference on detached weights): no backward can follow, so
        // the probabilities are not kept and each head's live in a small reused buffer.
        let keep = q.track_op() || k.track_op() || v.track_op();
        let jacobian = !fault(Fault::AttnJacobianSkipped);
        let op = Attention { heads, scale, jacobian, keep, probs: OnceLock::new() };
        return q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, op);
    }
    let dh = d / heads;
    let split = |y: &Tensor| y.reshape((b, t, heads, dh))?.transpose(1, 2)?.contiguous();
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let scores = (q.matmul(&k.t()?)? * scale)?;
    let mask = mask.narrow(0, 0, t)?.narrow(1, 0, t)?;
    let att = candle_nn::ops::softmax(&scores.broadcast_add(&mask)?, D::Minus1)?;
    att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))
}

struct Attention {
    heads: usize,
    scale: f64,
    /// Apply the softmax's Jacobian in the backward (false only under `Fault`).
    jacobian: bool,
    /// Keep the probabilities for a backward (an operand is tracked).
    keep: bool,
    /// The probabilities, (batch, heads, t, t), kept by the forward for the backward.
    probs: OnceLock<CpuStorage>,
}

/// The shapes of one call: batch, tokens, model width, heads, head width.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    d: usize,
    h: usize,
    dh: usize,
}

impl Dims {
    fn of(l: &Layout, heads: usize) -> Result<Self> {
        let (b, t, d) = l.shape().dims3()?;
        Ok(Self { b, t, d, h: heads, dh: d / heads })
    }

    /// Head `h` of one batch's (t, d) rows as a (t, dh) operand.
    fn head<'a, T>(&self, x: &'a [T], h: usize) -> Operand<'a, T> {
        Operand { data: &x[h * self.dh..], row_stride: self.d, col_stride: 1 }
    }

    /// The transpose of head `h`: a (dh, t) operand.
    fn head_t<'a, T>(&self, x: &'a [T], h: usize) -> Operand<'a, T> {
        Operand { data: &x[h * self.dh..], row_stride: 1, col_stride: self.d }
    }
}

fn same_shapes(ls: &[&Layout], what: &str) -> Result<()> {
    if ls.iter().any(|l| l.shape() != ls[0].shape()) {
        let dims: Vec<_> = ls.iter().map(|l| l.dims()).collect();
        candle_core::bail!("{what}: q, k, v (and dy) must have one shape, got {dims:?}");
    }
    Ok(())
}

/// Runs `f(first batch, its share of each output)` on up to `threads` scoped threads, each
/// output split by batch into parts of `per_batch[i]` elements.
fn split_batches<T: Send, const N: usize>(
    outs: [&mut [T]; N],
    per_batch: [usize; N],
    b: usize,
    f: impl Fn(usize, [&mut [T]; N]) -> Result<()> + Sync,
) -> Result<()> {
    let threads = candle_core::utils::get_num_threads().clamp(1, b.max(1));
    let chunk = b.div_ceil(threads);
    let mut parts: Vec<(usize, [&mut [T]; N])> = Vec::with_capacity(threads);
    let mut rest = outs;
    let mut start = 0;
    while start < b {
        let n = chunk.min(b - start);
        let mut taken: [&mut [T]; N] = std::array::from_fn(|_| &mut [][..]);
        for i in 0..N {
            let (head, tail) = std::mem::take(&mut rest[i]).split_at_mut(n * per_batch[i]);
            taken[i] = head;
            rest[i] = tail;
        }
        parts.push((start, taken));
        start += n;
    }
    if parts.len() <= 1 {
        return parts.into_iter().try_for_each(|(s, o)| f(s, o));
    }
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = parts.into_iter().map(|(s, o)| scope.spawn(move || f(s, o))).collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| candle_core::bail!("attention: a thread panicked")))
    })
}

/// The causal softmax of one head's scaled scores in place: row i over columns 0..=i, the
/// rest set to exactly 0. `fast` (forward-only passes): the type's vectorised softmax where
/// it has one (f32; a few ulp from this one), else this one.
fn causal_softmax<T: Real>(s: &mut [T], t: usize, scale: T, fast: bool) {
    let zero = T::from_f64(0.0);
    for (i, row) in s.chunks_exact_mut(t).enumerate() {
        let (live, masked) = row.split_at_mut(i + 1);
        masked.iter_mut().for_each(|v| *v = zero);
        if fast && T::softmax_fast(live, scale) {
            continue;
        }
        live.iter_mut().for_each(|v| *v *= scale);
        let max = live.iter().copied().fold(live[0], |a, b| if b > a { b } else { a });
        let mut sum = zero;
        for v in live.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        live.iter_mut().for_each(|v| *v /= sum);
    }
}

/// Forward: y (b, t, d), and the probabilities (b, h, t, t) when `keep`; else each head's
/// are computed in one (t, t) buffer per thread, reused, and dropped.
fn forward<T: Real>(q: &[T], k: &[T], v: &[T], n: Dims, scale: f64, keep: bool) -> Result<(Vec<T>, Option<Vec<T>>)> {
    let zero = T::from_f64(0.0);
    let (td, tt) = (n.t * n.d, n.t * n.t);
    let sm = Scores { scale: T::from_f64(scale), fast: !keep };
    let batch = |b: usize| {
        let r = b * td..(b + 1) * td;
        Heads { q: &q[r.clone()], k: &k[r.clone()], v: &v[r] }
    };
    let mut y = vec![zero; n.b * td];
    if !keep {
        split_batches([&mut y[..]], [td], n.b, |first, [y]| {
            let (mut p, mut tmp) = (vec![zero; tt], vec![zero; n.t * n.dh]);
            for (i, y) in y.chunks_exact_mut(td).enumerate() {
                for h in 0..n.h {
                    head(batch(first + i), n, h, sm, &mut p, &mut tmp, y)?;
                }
            }
            Ok(())
        })?;
        return Ok((y, None));
    }
    let mut probs = vec![zero; n.b * n.h * tt];
    split_batches([&mut y[..], &mut probs[..]], [td, n.h * tt], n.b, |first, [y, p]| {
        let mut tmp = vec![zero; n.t * n.dh];
        for (i, (y, p)) in y.chunks_exact_mut(td).zip(p.chunks_exact_mut(n.h * tt)).enumerate() {
            for (h, p) in p.chunks_exact_mut(tt).enumerate() {
                head(batch(first + i), n, h, sm, p, &mut tmp, y)?;
            }
        }
        Ok(())
    })?;
    Ok((y, Some(probs)))
}

/// How the scores become probabilities: the scale, and whether the vectorised softmax may be
/// used (a forward-only pass, nothing kept: yes; training keeps the generic one, whose values
/// the recorded baselines were trained with).
#[derive(Clone, Copy)]
struct Scores<T> {
    scale: T,
    fast: bool,
}

/// q, k and v rows: one window's (t, d) each, or all windows' in the backward.
struct Heads<'a, T> {
    q: &'a [T],
    k: &'a [T],
    v: &'a [T],
}

/// Head `h` of one window: `p` (t, t) = the causal softmax of Q_h K_hᵀ · scale, then Y_h =
/// P V_h (through `tmp`, (t, dh)) into head h's columns of `y` (t, d). `p` and `tmp` are
/// overwritten, never read first.
fn head<T: Real>(x: Heads<T>, n: Dims, h: usize, sm: Scores<T>, p: &mut [T], tmp: &mut [T], y: &mut [T]) -> Result<()> {
    matmul::product_serial(p, (n.t, n.t, n.dh), n.head(x.q, h), n.head_t(x.k, h))?;
    causal_softmax(p, n.t, sm.scale, sm.fast);
    let pm = Operand { data: &p[..], row_stride: n.t, col_stride: 1 };
    matmul::product_serial(tmp, (n.t, n.dh, n.t), pm, n.head(x.v, h))?;
    for (row, src) in y.chunks_exact_mut(n.d).zip(tmp.chunks_exact(n.dh)) {
        row[h * n.dh..(h + 1) * n.dh].copy_from_slice(src);
    }
    Ok(())
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "fused-causal-attention"
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
        let n = Dims::of(l1, self.heads)?;
        let w = "attention";
        same_shapes(&[l1, l2, l3], w)?;
        let (y, p) = match (s1, s2, s3) {
            (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) => {
                let (q, k, v) = (contiguous(q, l1, w)?, contiguous(k, l2, w)?, contiguous(v, l3, w)?);
                let (y, p) = forward(q, k, v, n, self.scale, self.keep)?;
                (CpuStorage::F32(y), p.map(CpuStorage::F32))
            }
            (CpuStorage::F64(q), CpuStorage::F64(k), CpuStorage::F64(v)) => {
                let (q, k, v) = (contiguous(q, l1, w)?, contiguous(k, l2, w)?, contiguous(v, l3, w)?);
                let (y, p) = forward(q, k, v, n, self.scale, self.keep)?;
                (CpuStorage::F64(y), p.map(CpuStorage::F64))
            }
            _ => candle_core::bail!("fused attention: q, k and v must all be f32 or all f64"),
        };
        if let Some(p) = p {
            if self.probs.set(p).is_err() {
                candle_core::bail!("fused attention: one op instance runs forward once");
            }
        }
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(probs) = self.probs.get() else {
            candle_core::bail!("fused attention: backward without the forward's probabilities (none was tracked)")
        };
        let op = AttentionGrad {
            heads: self.heads,
            scale: self.scale,
            jacobian: self.jacobian,
            probs: probs.clone(),
            dy: dy.contiguous()?,
        };
        let all = q.apply_op3_no_bwd(k, v, &op)?;
        let n = q.elem_count();
        let part = |i: usize| all.narrow(0, i * n, n)?.reshape(q.shape());
        Ok((Some(part(0)?), Some(part(1)?), Some(part(2)?)))
    }
}

/// The backward pass as an op of (q, k, v): dq, dk and dv packed in one rank-1 tensor.
struct AttentionGrad {
    heads: usize,
    scale: f64,
    jacobian: bool,
    probs: CpuStorage,
    dy: Tensor,
}

/// The backward's operands: the forward's inputs (all windows), its probabilities and dy.
struct Grads<'a, T> {
    x: Heads<'a, T>,
    p: &'a [T],
    dy: &'a [T],
}

fn backward<T: Real>(g: Grads<T>, n: Dims, scale: f64, jacobian: bool) -> Result<Vec<T>> {
    let zero = T::from_f64(0.0);
    let (td, tt) = (n.t * n.d, n.t * n.t);
    if g.p.len() != n.b * n.h * tt {
        candle_core::bail!("attention grad: {} probabilities kept for {} x {} x {tt}", g.p.len(), n.b, n.h);
    }
    let mut out = vec![zero; 3 * n.b * td];
    let (dq, rest) = out.split_at_mut(n.b * td);
    let (dk, dv) = rest.split_at_mut(n.b * td);
    split_batches([dq, dk, dv], [td; 3], n.b, |first, [dq, dk, dv]| {
        let (mut ds, mut tmp) = (vec![zero; tt], vec![zero; n.t * n.dh]);
        for i in 0..dq.len() / td {
            let (off, poff) = ((first + i) * td, (first + i) * n.h * tt);
            let (q, k, v, dy) =
                (&g.x.q[off..off + td], &g.x.k[off..off + td], &g.x.v[off..off + td], &g.dy[off..off + td]);
            let (dq, dk, dv) =
                (&mut dq[i * td..(i + 1) * td], &mut dk[i * td..(i + 1) * td], &mut dv[i * td..(i + 1) * td]);
            for h in 0..n.h {
                let p = &g.p[poff + h * tt..poff + (h + 1) * tt];
                let pt = Operand { data: p, row_stride: 1, col_stride: n.t };
                gemm_into_head(&mut tmp, dv, h, n, pt, n.head(dy, h))?; // dV = Pᵀ dY
                ds.iter_mut().for_each(|x| *x = zero);
                matmul::accumulate_serial(&mut ds, (n.t, n.t, n.dh), n.head(dy, h), n.head_t(v, h))?; // dP
                softmax_grad(&mut ds, p, n.t, T::from_f64(scale), jacobian);
                let dsm = Operand { data: &ds[..], row_stride: n.t, col_stride: 1 };
                gemm_into_head(&mut tmp, dq, h, n, dsm, n.head(k, h))?; // dQ = dS K
                let dst = Operand { data: &ds[..], row_stride: 1, col_stride: n.t };
                gemm_into_head(&mut tmp, dk, h, n, dst, n.head(q, h))?; // dK = dSᵀ Q
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// `tmp = a (t, t) · b (t, dh)`, then copied into head `h`'s columns of `out` (t, d).
fn gemm_into_head<T: Real>(
    tmp: &mut [T],
    out: &mut [T],
    h: usize,
    n: Dims,
    a: Operand<T>,
    b: Operand<T>,
) -> Result<()> {
    tmp.iter_mut().for_each(|x| *x = T::from_f64(0.0));
    matmul::accumulate_serial(tmp, (n.t, n.dh, n.t), a, b)?;
    for (row, src) in out.chunks_exact_mut(n.d).zip(tmp.chunks_exact(n.dh)) {
        row[h * n.dh..(h + 1) * n.dh].copy_from_slice(src);
    }
    Ok(())
}

/// dP -> dS in place: row i, columns 0..=i, P ⊙ (dP - Σ dP ⊙ P) · scale; the rest 0 (their
/// probability is 0). Without the Jacobian (`Fault`), dP · scale.
fn softmax_grad<T: Real>(ds: &mut [T], p: &[T], t: usize, scale: T, jacobian: bool) {
    let zero = T::from_f64(0.0);
    for (i, (row, pr)) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate() {
        let (live, masked) = row.split_at_mut(i + 1);
        if jacobian {
            let dot = live.iter().zip(pr).fold(zero, |a, (&d, &p)| a + d * p);
            live.iter_mut().zip(pr).for_each(|(d, &p)| *d = p * (*d - dot) * scale);
        } else {
            live.iter_mut().for_each(|d| *d *= scale);
        }
        masked.iter_mut().for_each(|v| *v = zero);
    }
}

impl CustomOp3 for AttentionGrad {
    fn name(&self) -> &'static str {
        "fused-causal-attention-grad"
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
        let n = Dims::of(l1, self.heads)?;
        let w = "attention grad";
        let (dy_s, dy_l) = self.dy.storage_and_layout();
        same_shapes(&[l1, l2, l3, dy_l], w)?;

        let out = match (s1, s2, s3, &self.probs, &*dy_s) {
            (
                CpuStorage::F32(q),
                CpuStorage::F32(k),
                CpuStorage::F32(v),
                CpuStorage::F32(p),
                candle_core::Storage::Cpu(CpuStorage::F32(dy)),
            ) => {
                let (q, k, v, dy) =
                    (contiguous(q, l1, w)?, contiguous(k, l2, w)?, contiguous(v, l3, w)?, contiguous(dy, dy_l, w)?);
                CpuStorage::F32(backward(Grads { x: Heads { q, k, v }, p, dy }, n, self.scale, self.jacobian)?)
            }
            (
                CpuStorage::F64(q),
                CpuStorage::F64(k),
                CpuStorage::F64(v),
                CpuStorage::F64(p),
                candle_core::Storage::Cpu(CpuStorage::F64(dy)),
            ) => {
                let (q, k, v, dy) =
                    (contiguous(q, l1, w)?, contiguous(k, l2, w)?, contiguous(v, l3, w)?, contiguous(dy, dy_l, w)?);
                CpuStorage::F64(backward(Grads { x: Heads { q, k, v }, p, dy }, n, self.scale, self.jacobian)?)
            }
            _ => candle_core::bail!("fused attention grad: f32 or f64 CPU tensors of one dtype"),
        };
        Ok((out, Shape::from(3 * l1.shape().elem_count())))
    }
}
