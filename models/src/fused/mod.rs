//! Fused CPU operations with their own backward pass, as candle custom ops.
//!
//! Why: candle builds `relu(x W + b)` from three ops and its backward from about ten, each
//! allocating a buffer, and its matmul backward always computes the gradient of the left
//! operand, even when that operand is the training data (a whole wasted GEMM in an MLP's
//! first layer). Here the forward is one GEMM writing onto the broadcast bias with the ReLU
//! applied in place, and the backward is the ReLU mask in one pass, then the two GEMMs that
//! are needed (the input gradient only when the input is tracked). The softmax cross-entropy
//! is one pass forward and one pass backward instead of candle's log-softmax + gather + mean.
//!
//! The math is the same as the unfused ops (only the order of floating-point operations
//! changes); `tests/gradcheck.rs` checks every op here against finite differences.
//!
//! Devices: the fused kernels are CPU code for f32 and f64. Anywhere else (CUDA, other dtypes)
//! the functions below use candle's own ops, chosen before any work is done, so a CUDA run
//! never falls back to the CPU.

pub mod attn;
mod conv;
mod conv_pool;
mod direct;
pub(crate) mod matmul;
pub mod norm;
mod softmax;

pub use conv::{conv2d, max_pool2x2};
pub use conv_pool::conv2d_relu_pool;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};

/// What the fused kernels need of a float type beyond candle's `WithDType`.
pub(crate) trait Real: WithDType {
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    /// `direct::conv_f32` where this type has such a kernel: false when nothing was done.
    fn conv_direct(_w: &[Self], _offs: &[usize], _xpad: &[Self], _y: &mut [Self], _dims: (usize, usize)) -> bool {
        false
    }
    /// `softmax::softmax_f32` (vectorised, a few ulp from the generic softmax) where this type
    /// has it: false when nothing was done.
    fn softmax_fast(_row: &mut [Self], _scale: Self) -> bool {
        false
    }
}

impl Real for f32 {
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn conv_direct(w: &[f32], offs: &[usize], xpad: &[f32], y: &mut [f32], dims: (usize, usize)) -> bool {
        direct::conv_f32(w, offs, xpad, y, dims)
    }
    fn softmax_fast(row: &mut [f32], scale: f32) -> bool {
        softmax::softmax_f32(row, scale);
        true
    }
}

impl Real for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
}

/// A deliberately wrong backward, for the test that shows the gradient check can fail
/// (`tests/gradcheck.rs`); never set outside it.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The linear layer's backward passes the gradient through the ReLU unmasked.
    ReluMaskSkipped,
    /// The cross-entropy's backward forgets the 1/n of the mean.
    XentScaleSkipped,
    /// The layer norm's input gradient leaves out its mean term (- mean(dy·g)).
    NormMeanSkipped,
    /// The attention's backward passes dP through without the softmax's Jacobian.
    AttnJacobianSkipped,
    /// The convolution's backward returns a zero bias gradient.
    ConvBiasGradSkipped,
    /// The convolution's backward skips the input gradient (col2im): zeros.
    ConvCol2imSkipped,
    /// The max pool's backward gives each window's gradient to its first input.
    PoolGradToFirst,
}

thread_local! {
    static FAULT: std::cell::Cell<Option<Fault>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `fault` in every fused op it builds (the op keeps it for its backward).
#[doc(hidden)]
pub fn with_fault<R>(fault: Fault, f: impl FnOnce() -> R) -> R {
    FAULT.with(|c| c.set(Some(fault)));
    let r = f();
    FAULT.with(|c| c.set(None));
    r
}

fn fault(which: Fault) -> bool {
    FAULT.with(|c| c.get()) == Some(which)
}

fn fusable(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// `x W + b`, then ReLU when `relu`: x (n, in), W (in, out), b (out). Other ranks, devices or
/// dtypes use candle's matmul, broadcast add and relu.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    if fusable(x) && x.rank() == 2 && w.rank() == 2 && b.rank() == 1 && x.dtype() == w.dtype() {
        return x.apply_op3(w, b, LinearAct { relu, mask: relu && !fault(Fault::ReluMaskSkipped) });
    }
    let y = match x.rank() {
        2 => x.matmul(w)?,
        _ => x.broadcast_matmul(w)?,
    }
    .broadcast_add(b)?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// Mean softmax cross-entropy of `logits` (n, classes) against `labels` (n, u32): candle-nn's
/// `loss::cross_entropy` in one op on the CPU, candle-nn's own elsewhere.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    if fusable(logits) && logits.rank() == 2 && labels.dtype() == DType::U32 && labels.rank() == 1 {
        let op = SoftmaxXent { mean: !fault(Fault::XentScaleSkipped) };
        // `contiguous` is free for the contiguous tensors the models give; the kernels need it.
        return logits.contiguous()?.apply_op2(&labels.contiguous()?, op);
    }
    candle_nn::loss::cross_entropy(logits, labels)
}

/// The forward of a fused op with three inputs (x, a weight, a bias), for either float type.
trait Forward3 {
    fn fwd<T: Real>(&self, x: &[T], xl: &Layout, w: &[T], wl: &Layout, b: &[T], bl: &Layout) -> Result<Vec<T>>;
}

/// `op.fwd` on three CPU storages that are all f32 or all f64 (the one `cpu_fwd` dispatch of
/// the three-input ops); other dtypes are refused, the message starting with `what`.
fn forward3(
    op: &impl Forward3,
    what: &str,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    (s3, l3): (&CpuStorage, &Layout),
) -> Result<CpuStorage> {
    Ok(match (s1, s2, s3) {
        (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => CpuStorage::F32(op.fwd(x, l1, w, l2, b, l3)?),
        (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => CpuStorage::F64(op.fwd(x, l1, w, l2, b, l3)?),
        _ => candle_core::bail!("{what} must all be f32 or all f64"),
    })
}

/// The slice a layout covers, refusing non-contiguous ones (the callers make them contiguous).
fn contiguous<'a, T>(s: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("{what}: expected a contiguous tensor"),
    }
}

struct LinearAct {
    relu: bool,
    /// Mask the gradient by the ReLU in the backward (false only under `Fault`).
    mask: bool,
}

impl Forward3 for LinearAct {
    fn fwd<T: Real>(&self, x: &[T], xl: &Layout, w: &[T], wl: &Layout, b: &[T], bl: &Layout) -> Result<Vec<T>> {
        let ((n, k), (k2, m)) = (xl.shape().dims2()?, wl.shape().dims2()?);
        let b = contiguous(b, bl, "fused linear bias")?;
        if k != k2 || b.len() != m {
            candle_core::bail!("fused linear: x {:?}, W {:?}, b {:?}", xl.dims(), wl.dims(), bl.dims());
        }
        // The destination starts as the bias broadcast over rows; the GEMM adds x W onto it.
        let mut y: Vec<T> = Vec::with_capacity(n * m);
        for _ in 0..n {
            y.extend_from_slice(b);
        }
        let (x, w) = (&x[xl.start_offset()..], &w[wl.start_offset()..]);
        let (xs, ws) = (xl.stride(), wl.stride());
        let a = matmul::Operand { data: x, row_stride: xs[0], col_stride: xs[1] };
        let b = matmul::Operand { data: w, row_stride: ws[0], col_stride: ws[1] };
        matmul::accumulate(&mut y, (n, m, k), a, b)?;
        if self.relu {
            let zero = T::from_f64(0.0);
            y.iter_mut().for_each(|v| *v = if *v > zero { *v } else { zero });
        }
        Ok(y)
    }
}

impl CustomOp3 for LinearAct {
    fn name(&self) -> &'static str {
        "fused-linear"
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
        let shape = Shape::from((l1.dims()[0], l2.dims()[1]));
        Ok((forward3(self, "fused linear: x, W and b", (s1, l1), (s2, l2), (s3, l3))?, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?; // a no-op unless a caller's op gave a strided gradient
        let dz = if self.mask { dy.apply_op2_no_bwd(y, &ReluMask)? } else { dy };
        let dw = x.t()?.matmul(&dz)?;
        let db = dz.apply_op1_no_bwd(&ColumnSum)?;
        // The data needs no gradient (candle's own matmul would compute it anyway).
        let dx = if x.track_op() { Some(dz.matmul(&w.t()?)?) } else { None };
        Ok((dx, Some(dw), Some(db)))
    }
}

/// The sum over rows of a (rows, cols) tensor, in one pass down the rows (candle's
/// `sum(0)` walks the strided dimension element by element).
struct ColumnSum;

impl ColumnSum {
    fn sum<T: Real>(x: &[T], l: &Layout) -> Result<Vec<T>> {
        let cols = l.dims()[1];
        let x = contiguous(x, l, "column sum")?;
        let mut out = vec![T::from_f64(0.0); cols];
        for row in x.chunks_exact(cols) {
            out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
        }
        Ok(out)
    }
}

impl candle_core::CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "fused-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        if l.dims().len() != 2 {
            candle_core::bail!("column sum: a rank-2 tensor, not {:?}", l.dims());
        }
        let out = match s {
            CpuStorage::F32(x) => CpuStorage::F32(Self::sum(x, l)?),
            CpuStorage::F64(x) => CpuStorage::F64(Self::sum(x, l)?),
            _ => candle_core::bail!("column sum: f32 or f64"),
        };
        Ok((out, Shape::from(l.dims()[1])))
    }
}

/// dy where the ReLU's output is positive, else 0: its derivative at 0 is taken as 0. candle's
/// own `relu` backward takes it as 1 (it masks by input >= 0); the two differ only where a
/// pre-activation is exactly 0.
struct ReluMask;

impl ReluMask {
    fn mask<T: Real>(dy: &[T], dl: &Layout, y: &[T], yl: &Layout) -> Result<Vec<T>> {
        let (dy, y) = (contiguous(dy, dl, "relu mask")?, contiguous(y, yl, "relu mask")?);
        let zero = T::from_f64(0.0);
        Ok(dy.iter().zip(y).map(|(&d, &v)| if v > zero { d } else { zero }).collect())
    }
}

impl CustomOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "fused-relu-mask"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let dy = match (s1, s2) {
            (CpuStorage::F32(d), CpuStorage::F32(y)) => CpuStorage::F32(Self::mask(d, l1, y, l2)?),
            (CpuStorage::F64(d), CpuStorage::F64(y)) => CpuStorage::F64(Self::mask(d, l1, y, l2)?),
            _ => candle_core::bail!("relu mask: f32 or f64 tensors of one dtype"),
        };
        Ok((dy, l1.shape().clone()))
    }
}

/// Per row: log-sum-exp of the logits minus the label's logit, averaged over rows.
struct SoftmaxXent {
    /// The backward divides by the number of rows (false only under `Fault`).
    mean: bool,
}

/// The labels as indices, checked against the number of classes.
fn labels(s: &CpuStorage, l: &Layout, classes: usize) -> Result<Vec<usize>> {
    let CpuStorage::U32(y) = s else { candle_core::bail!("cross-entropy: labels must be u32") };
    let y = contiguous(y, l, "cross-entropy labels")?;
    y.iter()
        .map(|&c| match c as usize {
            c if c < classes => Ok(c),
            c => candle_core::bail!("cross-entropy: label {c} is not below the {classes} classes"),
        })
        .collect()
}

impl SoftmaxXent {
    fn fwd<T: Real>(z: &[T], zl: &Layout, y: &[usize]) -> Result<T> {
        let c = zl.dims()[1];
        let z = contiguous(z, zl, "cross-entropy logits")?;
        let mut total = 0f64;
        for (row, &label) in z.chunks_exact(c).zip(y) {
            let max = row.iter().copied().fold(row[0], |a, b| if b > a { b } else { a });
            let sum = row.iter().fold(T::from_f64(0.0), |s, &v| s + (v - max).exp());
            total += (sum.ln() + max - row[label]).to_f64();
        }
        Ok(T::from_f64(total / y.len() as f64))
    }

    /// d loss / d logits = g (softmax(z) - onehot(y)) / n.
    fn grad<T: Real>(z: &[T], zl: &Layout, y: &[usize], g: T, mean: bool) -> Result<Vec<T>> {
        let c = zl.dims()[1];
        let z = contiguous(z, zl, "cross-entropy logits")?;
        let scale = if mean { g / T::from_f64(y.len() as f64) } else { g };
        let mut out = Vec::with_capacity(z.len());
        for (row, &label) in z.chunks_exact(c).zip(y) {
            let max = row.iter().copied().fold(row[0], |a, b| if b > a { b } else { a });
            let start = out.len();
            let mut sum = T::from_f64(0.0);
            for &v in row {
                let e = (v - max).exp();
                sum += e;
                out.push(e);
            }
            let k = scale / sum;
            out[start..].iter_mut().for_each(|e| *e *= k);
            out[start + label] -= scale;
        }
        Ok(out)
    }
}

impl CustomOp2 for SoftmaxXent {
    fn name(&self) -> &'static str {
        "fused-softmax-xent"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c) = l1.shape().dims2()?;
        let y = labels(s2, l2, c)?;
        if y.len() != n || n == 0 {
            candle_core::bail!("cross-entropy: {n} rows of logits, {} labels", y.len());
        }
        let loss = match s1 {
            CpuStorage::F32(z) => CpuStorage::F32(vec![Self::fwd(z, l1, &y)?]),
            CpuStorage::F64(z) => CpuStorage::F64(vec![Self::fwd(z, l1, &y)?]),
            _ => candle_core::bail!("cross-entropy: f32 or f64 logits"),
        };
        Ok((loss, Shape::from(())))
    }

    fn bwd(&self, z: &Tensor, y: &Tensor, _loss: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(z.contiguous()?.apply_op3_no_bwd(&y.contiguous()?, g, &XentGrad { mean: self.mean })?), None))
    }
}

/// The cross-entropy's gradient with respect to the logits, given the loss's gradient g.
struct XentGrad {
    mean: bool,
}

impl CustomOp3 for XentGrad {
    fn name(&self) -> &'static str {
        "fused-softmax-xent-grad"
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
        let y = labels(s2, l2, l1.dims()[1])?;
        let dz = match (s1, s3) {
            (CpuStorage::F32(z), CpuStorage::F32(g)) => {
                CpuStorage::F32(SoftmaxXent::grad(z, l1, &y, contiguous(g, l3, "cross-entropy grad")?[0], self.mean)?)
            }
            (CpuStorage::F64(z), CpuStorage::F64(g)) => {
                CpuStorage::F64(SoftmaxXent::grad(z, l1, &y, contiguous(g, l3, "cross-entropy grad")?[0], self.mean)?)
            }
            _ => candle_core::bail!("cross-entropy grad: f32 or f64 logits and gradient"),
        };
        Ok((dz, l1.shape().clone()))
    }
}
