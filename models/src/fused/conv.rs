//! Fused 2-D convolution (stride 1, "same" padding, bias, optional ReLU) and 2x2 max pool as
//! candle custom ops on the CPU, each with its own backward.
//!
//! Why: see bench/peers/README.md, "fmnist-cnn-train". The convolution is im2col + one GEMM
//! per image onto the broadcast bias, with the ReLU applied in place. Its backward masks the
//! gradient by the ReLU, then per group of images: the kernel gradient as one GEMM, the bias
//! gradient as row sums, and the input gradient (a GEMM and col2im) only when the input is
//! tracked (the first layer reads the data). Images, or groups of them, run in parallel on
//! candle's thread count, each GEMM on one thread; the partial kernel and bias gradients are
//! summed in group order, so the result does not depend on the thread count. The pool is one
//! pass forward; its backward gives each window's gradient to every input equal to the
//! window's maximum, as candle's `max` reduction does for ties.
//!
//! The math is that of candle's `conv2d` + `broadcast_add` + `relu` and of
//! `layers::max_pool2x2`'s reductions (only the order of floating-point operations changes);
//! `tests/gradcheck_conv.rs` checks both against finite differences and against candle's ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::{contiguous, fault, forward3, fusable, matmul, Fault, Forward3, Real};

/// Images per job of the backward pass: the partial kernel gradients are summed over groups.
/// Fixed, so the order of the sums does not depend on the thread count; 4 keeps a group's
/// im2col buffer (conv2 of fmnist-cnn: 144 x 784 values) within a core's L2 cache.
const GROUP: usize = 4;

/// `relu(conv2d(x, w) + b)` (or without the ReLU): x (n, c, h, w) NCHW, w (o, c, k, k) with k
/// odd, padding k / 2, stride 1, b (o). Other shapes, devices or dtypes use candle's conv2d,
/// broadcast add and relu.
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, padding: usize, relu: bool) -> Result<Tensor> {
    let same = w.rank() == 4 && {
        let d = w.dims();
        d[2] == d[3] && d[2] % 2 == 1 && padding == d[2] / 2
    };
    if fusable(x) && same && x.rank() == 4 && b.rank() == 1 && x.dtype() == w.dtype() && x.dtype() == b.dtype() {
        let op = Conv {
            pad: padding,
            relu,
            bias_grad: !fault(Fault::ConvBiasGradSkipped),
            input_grad: !fault(Fault::ConvCol2imSkipped),
        };
        return x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, op);
    }
    let y = x.conv2d(w, padding, 1, 1, 1)?.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// 2x2 max pool, stride 2, of x (n, c, h, w) with h and w even. Other devices or dtypes use
/// reshape + two `max` reductions (whose backward candle has right; its `max_pool2d`'s is not).
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("max_pool2x2 needs even height and width, got {h}x{w}");
    }
    if fusable(x) {
        return x.contiguous()?.apply_op1(MaxPool { route: !fault(Fault::PoolGradToFirst) });
    }
    x.reshape((b, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
}

/// Runs `f(scratch, i, job)` for every job, in parallel on candle's thread count when it is
/// above 1 (rayon's pool), else in order on this thread; results come back in job order.
pub(super) fn run_jobs<J: Send, S, R: Send>(
    jobs: Vec<J>,
    scratch: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, J) -> Result<R> + Sync + Send,
) -> Result<Vec<R>> {
    if candle_core::utils::get_num_threads() > 1 && jobs.len() > 1 {
        jobs.into_par_iter().enumerate().map_init(scratch, |s, (i, j)| f(s, i, j)).collect()
    } else {
        let mut s = scratch();
        jobs.into_iter().enumerate().map(|(i, j)| f(&mut s, i, j)).collect()
    }
}

/// A convolution's input, kernel and bias as contiguous slices.
pub(super) type Slices3<'a, T> = (&'a [T], &'a [T], &'a [T]);

/// The shapes of one convolution.
#[derive(Clone, Copy)]
pub(super) struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub k: usize,
    pub pad: usize,
}

impl Geometry {
    pub fn new(xl: &Layout, wl: &Layout, b_len: usize, pad: usize) -> Result<Self> {
        let (n, c, h, w) = xl.shape().dims4()?;
        let (o, c2, k, k2) = wl.shape().dims4()?;
        if c != c2 || k != k2 || b_len != o || pad != k / 2 {
            candle_core::bail!("fused conv2d: x {:?}, w {:?}, b ({b_len}), padding {pad}", xl.dims(), wl.dims());
        }
        Ok(Self { n, c, h, w, o, k, pad })
    }

    /// The geometry and the contiguous slices of a convolution's input, kernel and bias.
    pub fn operands<'a, T>(
        (x, xl): (&'a [T], &Layout),
        (w, wl): (&'a [T], &Layout),
        (b, bl): (&'a [T], &Layout),
        pad: usize,
    ) -> Result<(Self, Slices3<'a, T>)> {
        let (x, w, b) = (
            contiguous(x, xl, "conv2d input")?,
            contiguous(w, wl, "conv2d kernel")?,
            contiguous(b, bl, "conv2d bias")?,
        );
        Ok((Self::new(xl, wl, b.len(), pad)?, (x, w, b)))
    }

    pub fn hw(&self) -> usize {
        self.h * self.w
    }

    /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column).
    pub fn ckk(&self) -> usize {
        self.c * self.k * self.k
    }

    /// For kernel offset `d` (0..k) along a side of `n`: the output range whose input
    /// `out + d - pad` lies inside the image, and the shift from output to input.
    fn span(&self, d: usize, n: usize) -> (usize, usize, isize) {
        let shift = d as isize - self.pad as isize;
        let lo = (-shift).clamp(0, n as isize) as usize;
        let hi = (n as isize - shift).clamp(lo as isize, n as isize) as usize;
        (lo, hi, shift)
    }

    /// One image (c, h, w) into columns `at..at + h*w` of `col` (ckk rows of `ld` values):
    /// col[(ci, ki, kj)][oh * w + ow] = x[ci][oh + ki - pad][ow + kj - pad], 0 outside.
    pub fn im2col<T: Real>(&self, x: &[T], col: &mut [T], ld: usize, at: usize) {
        let (h, w, hw, zero) = (self.h, self.w, self.hw(), T::from_f64(0.0));
        for (r, row) in col.chunks_exact_mut(ld).take(self.ckk()).enumerate() {
            let (ci, ki, kj) = (r / (self.k * self.k), r / self.k % self.k, r % self.k);
            let plane = &x[ci * hw..(ci + 1) * hw];
            let ((r0, r1, dr), (c0, c1, dc)) = (self.span(ki, h), self.span(kj, w));
            let row = &mut row[at..at + hw];
            row[..r0 * w].fill(zero);
            row[r1 * w..].fill(zero);
            for oh in r0..r1 {
                let src = &plane[(oh as isize + dr) as usize * w..][..w];
                let dst = &mut row[oh * w..(oh + 1) * w];
                dst[..c0].fill(zero);
                dst[c1..].fill(zero);
                dst[c0..c1].copy_from_slice(&src[(c0 as isize + dc) as usize..(c1 as isize + dc) as usize]);
            }
        }
    }

    /// The adjoint of `im2col`: adds the columns (ckk rows of h*w) back onto one image.
    fn col2im<T: Real>(&self, col: &[T], x: &mut [T]) {
        let (h, w, hw) = (self.h, self.w, self.hw());
        for (r, row) in col.chunks_exact(hw).enumerate() {
            let (ci, ki, kj) = (r / (self.k * self.k), r / self.k % self.k, r % self.k);
            let plane = &mut x[ci * hw..(ci + 1) * hw];
            let ((r0, r1, dr), (c0, c1, dc)) = (self.span(ki, h), self.span(kj, w));
            for oh in r0..r1 {
                let dst = &mut plane[(oh as isize + dr) as usize * w..][..w];
                let dst = &mut dst[(c0 as isize + dc) as usize..(c1 as isize + dc) as usize];
                dst.iter_mut().zip(&row[oh * w + c0..oh * w + c1]).for_each(|(d, &s)| *d += s);
            }
        }
    }
}

struct Conv {
    pad: usize,
    relu: bool,
    /// Compute the bias gradient (false only under `Fault`: it comes back as zeros).
    bias_grad: bool,
    /// Compute the input gradient when the input is tracked (false only under `Fault`: zeros).
    input_grad: bool,
}

impl Forward3 for Conv {
    fn fwd<T: Real>(&self, x: &[T], xl: &Layout, w: &[T], wl: &Layout, b: &[T], bl: &Layout) -> Result<Vec<T>> {
        let (g, (x, w, b)) = Geometry::operands((x, xl), (w, wl), (b, bl), self.pad)?;
        let (hw, ckk, zero) = (g.hw(), g.ckk(), T::from_f64(0.0));
        // y starts as the broadcast bias, written once (the GEMM adds onto it).
        let mut y = Vec::with_capacity(g.n * g.o * hw);
        (0..g.n).for_each(|_| b.iter().for_each(|&bias| y.extend(std::iter::repeat_n(bias, hw))));
        let jobs: Vec<&mut [T]> = y.chunks_mut(g.o * hw).collect();
        run_jobs(
            jobs,
            || vec![zero; ckk * hw],
            |col, i, yb| {
                g.im2col(&x[i * g.c * hw..(i + 1) * g.c * hw], col, hw, 0);
                let a = matmul::Operand { data: w, row_stride: ckk, col_stride: 1 };
                let c = matmul::Operand { data: &col[..], row_stride: hw, col_stride: 1 };
                matmul::accumulate_serial(yb, (g.o, hw, ckk), a, c)?;
                if self.relu {
                    yb.iter_mut().for_each(|v| *v = if *v > zero { *v } else { zero });
                }
                Ok(())
            },
        )?;
        Ok(y)
    }
}

impl Conv {
    /// (input gradient if `input_grad`, kernel gradient, bias gradient), given the output y
    /// and its gradient dy, all contiguous.
    fn grads<T: Real>(&self, g: Geometry, x: &[T], w: &[T], y: &[T], dy: &[T], input_grad: bool) -> Result<Grads<T>> {
        let (hw, ckk, zero) = (g.hw(), g.ckk(), T::from_f64(0.0));
        let mut dx = vec![zero; if input_grad { g.n * g.c * hw } else { 0 }];
        let groups = g.n.div_ceil(GROUP);
        let jobs: Vec<Option<&mut [T]>> = match input_grad {
            true => dx.chunks_mut(GROUP * g.c * hw).map(Some).collect(),
            false => (0..groups).map(|_| None).collect(),
        };
        let scratch = || Scratch {
            col: vec![zero; ckk * GROUP * hw],
            dz: vec![zero; g.o * GROUP * hw],
            dcol: vec![zero; if input_grad { ckk * hw } else { 0 }],
        };
        let parts = run_jobs(jobs, scratch, |s, job, dxg| self.group(g, s, job, (x, w, y, dy), dxg))?;
        let (mut dw, mut db) = (vec![zero; g.o * ckk], vec![zero; g.o]);
        for (pw, pb) in parts {
            dw.iter_mut().zip(&pw).for_each(|(a, &v)| *a += v);
            db.iter_mut().zip(&pb).for_each(|(a, &v)| *a += v);
        }
        Ok((input_grad.then_some(dx), dw, db))
    }

    /// One group of images: their partial kernel and bias gradients, and their input
    /// gradient into `dxg` when given.
    fn group<T: Real>(
        &self,
        g: Geometry,
        s: &mut Scratch<T>,
        job: usize,
        (x, w, y, dy): (&[T], &[T], &[T], &[T]),
        dxg: Option<&mut [T]>,
    ) -> Result<(Vec<T>, Vec<T>)> {
        let (hw, ckk, chw, ohw, zero) = (g.hw(), g.ckk(), g.c * g.hw(), g.o * g.hw(), T::from_f64(0.0));
        let images = job * GROUP..g.n.min((job + 1) * GROUP);
        let ld = images.len() * hw;
        let (col, dz) = (&mut s.col[..ckk * ld], &mut s.dz[..g.o * ld]);
        for (j, i) in images.clone().enumerate() {
            g.im2col(&x[i * chw..(i + 1) * chw], col, ld, j * hw);
            let (dyi, yi) = (&dy[i * ohw..(i + 1) * ohw], &y[i * ohw..(i + 1) * ohw]);
            for (oc, dst) in dz.chunks_exact_mut(ld).enumerate() {
                let (d, v) = (&dyi[oc * hw..(oc + 1) * hw], &yi[oc * hw..(oc + 1) * hw]);
                let dst = &mut dst[j * hw..(j + 1) * hw];
                if self.relu {
                    dst.iter_mut().zip(d.iter().zip(v)).for_each(|(t, (&d, &v))| *t = if v > zero { d } else { zero });
                } else {
                    dst.copy_from_slice(d);
                }
            }
        }
        // dW (o, ckk) = dZ (o, ld) · colᵀ (ld, ckk); db = the rows' sums of dZ.
        let mut dw = vec![zero; g.o * ckk];
        let a = matmul::Operand { data: &dz[..], row_stride: ld, col_stride: 1 };
        let b = matmul::Operand { data: &col[..], row_stride: 1, col_stride: ld };
        matmul::accumulate_serial(&mut dw, (g.o, ckk, ld), a, b)?;
        let db = match self.bias_grad {
            true => dz.chunks_exact(ld).map(|r| r.iter().fold(zero, |s, &v| s + v)).collect(),
            false => vec![zero; g.o],
        };
        if let Some(dxg) = dxg.filter(|_| self.input_grad) {
            // Per image: dcol (ckk, hw) = Wᵀ (ckk, o) · dZ_j (o, hw), then col2im.
            for (j, dxi) in dxg.chunks_exact_mut(chw).enumerate() {
                s.dcol.fill(zero);
                let a = matmul::Operand { data: w, row_stride: 1, col_stride: ckk };
                let b = matmul::Operand { data: &dz[j * hw..], row_stride: ld, col_stride: 1 };
                matmul::accumulate_serial(&mut s.dcol, (ckk, hw, g.o), a, b)?;
                g.col2im(&s.dcol, dxi);
            }
        }
        Ok((dw, db))
    }
}

type Grads<T> = (Option<Vec<T>>, Vec<T>, Vec<T>);

/// One job's buffers, reused across the jobs a worker runs.
struct Scratch<T> {
    col: Vec<T>,
    dz: Vec<T>,
    dcol: Vec<T>,
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "fused-conv2d"
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
        let shape = Shape::from((n, l2.dims()[0], h, w));
        Ok((forward3(self, "fused conv2d: x, w and b", (s1, l1), (s2, l2), (s3, l3))?, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?; // a no-op unless a caller's op gave a strided gradient
        let input_grad = x.track_op();
        let g = Geometry::new(x.layout(), w.layout(), b.elem_count(), self.pad)?;
        let (dx, dw, db) = {
            let (xs, ys, ws, ds) = (
                x.storage_and_layout().0,
                y.storage_and_layout().0,
                w.storage_and_layout().0,
                dy.storage_and_layout().0,
            );
            let slice = |t: &Tensor| t.layout().contiguous_offsets().map(|(a, b)| a..b);
            let (Some(rx), Some(ry), Some(rw), Some(rd)) = (slice(x), slice(y), slice(w), slice(&dy)) else {
                candle_core::bail!("fused conv2d backward: expected contiguous tensors");
            };
            match (&*xs, &*ws, &*ys, &*ds) {
                (
                    Storage::Cpu(CpuStorage::F32(xv)),
                    Storage::Cpu(CpuStorage::F32(wv)),
                    Storage::Cpu(CpuStorage::F32(yv)),
                    Storage::Cpu(CpuStorage::F32(dv)),
                ) => wrap(self.grads(g, &xv[rx], &wv[rw], &yv[ry], &dv[rd], input_grad)?, x, w, b)?,
                (
                    Storage::Cpu(CpuStorage::F64(xv)),
                    Storage::Cpu(CpuStorage::F64(wv)),
                    Storage::Cpu(CpuStorage::F64(yv)),
                    Storage::Cpu(CpuStorage::F64(dv)),
                ) => wrap(self.grads(g, &xv[rx], &wv[rw], &yv[ry], &dv[rd], input_grad)?, x, w, b)?,
                _ => candle_core::bail!("fused conv2d backward: CPU tensors of one dtype, f32 or f64"),
            }
        };
        Ok((dx, Some(dw), Some(db)))
    }
}

/// The gradients as tensors shaped like x, w and b.
fn wrap<T: Real>(
    (dx, dw, db): Grads<T>,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
) -> Result<(Option<Tensor>, Tensor, Tensor)> {
    let dx = dx.map(|v| Tensor::from_vec(v, x.shape(), x.device())).transpose()?;
    Ok((dx, Tensor::from_vec(dw, w.shape(), w.device())?, Tensor::from_vec(db, b.shape(), b.device())?))
}

struct MaxPool {
    /// Route each window's gradient to its maxima (false only under `Fault`: to its first input).
    route: bool,
}

/// Planes (h, w) of a pool's input per job: 16 of 28x28 is one fmnist-cnn image's first stage.
const POOL_PLANES: usize = 16;

impl MaxPool {
    fn fwd<T: Real>(x: &[T], l: &Layout) -> Result<Vec<T>> {
        let (_, _, h, w) = l.shape().dims4()?;
        let x = contiguous(x, l, "max pool input")?;
        let (hw, ow) = (h * w, w / 2);
        let mut y = vec![T::from_f64(0.0); x.len() / 4];
        let jobs: Vec<&mut [T]> = y.chunks_mut(POOL_PLANES * hw / 4).collect();
        run_jobs(
            jobs,
            || (),
            |_, job, out| {
                let x = &x[job * POOL_PLANES * hw..];
                for (p, plane) in out.chunks_exact_mut(hw / 4).enumerate() {
                    let src = &x[p * hw..(p + 1) * hw];
                    for (r, row) in plane.chunks_exact_mut(ow).enumerate() {
                        let (top, bottom) = (&src[2 * r * w..][..w], &src[(2 * r + 1) * w..][..w]);
                        for (c, v) in row.iter_mut().enumerate() {
                            *v = max(max(top[2 * c], top[2 * c + 1]), max(bottom[2 * c], bottom[2 * c + 1]));
                        }
                    }
                }
                Ok(())
            },
        )?;
        Ok(y)
    }

    /// dx = g where x equals its window's maximum y, else 0.
    fn grad<T: Real>(&self, x: &[T], y: &[T], g: &[T], (h, w): (usize, usize)) -> Result<Vec<T>> {
        let (hw, ow, zero) = (h * w, w / 2, T::from_f64(0.0));
        let mut dx = vec![zero; x.len()];
        let jobs: Vec<&mut [T]> = dx.chunks_mut(POOL_PLANES * hw).collect();
        run_jobs(
            jobs,
            || (),
            |_, job, out| {
                let base = job * POOL_PLANES * hw;
                for (p, plane) in out.chunks_exact_mut(hw).enumerate() {
                    let (src, q) = (&x[base + p * hw..][..hw], (base + p * hw) / 4);
                    for r in 0..h {
                        let (xr, dst) = (&src[r * w..][..w], &mut plane[r * w..][..w]);
                        let (yr, gr) = (&y[q + r / 2 * ow..][..ow], &g[q + r / 2 * ow..][..ow]);
                        for (c, d) in dst.iter_mut().enumerate() {
                            let to_it = match self.route {
                                true => xr[c] == yr[c / 2],
                                false => r % 2 == 0 && c % 2 == 0,
                            };
                            *d = if to_it { gr[c / 2] } else { zero };
                        }
                    }
                }
                Ok(())
            },
        )?;
        Ok(dx)
    }
}

pub(super) fn max<T: Real>(a: T, b: T) -> T {
    if b > a {
        b
    } else {
        a
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "fused-max-pool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let y = match s {
            CpuStorage::F32(x) => CpuStorage::F32(Self::fwd(x, l)?),
            CpuStorage::F64(x) => CpuStorage::F64(Self::fwd(x, l)?),
            _ => candle_core::bail!("fused max pool: f32 or f64"),
        };
        Ok((y, Shape::from((n, c, h / 2, w / 2))))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let g = g.contiguous()?;
        let (_, _, h, w) = x.dims4()?;
        let (xs, ys, gs) = (x.storage_and_layout().0, y.storage_and_layout().0, g.storage_and_layout().0);
        let slice = |t: &Tensor| t.layout().contiguous_offsets().map(|(a, b)| a..b);
        let (Some(rx), Some(ry), Some(rg)) = (slice(x), slice(y), slice(&g)) else {
            candle_core::bail!("fused max pool backward: expected contiguous tensors");
        };
        let dx = match (&*xs, &*ys, &*gs) {
            (
                Storage::Cpu(CpuStorage::F32(xv)),
                Storage::Cpu(CpuStorage::F32(yv)),
                Storage::Cpu(CpuStorage::F32(gv)),
            ) => Tensor::from_vec(self.grad(&xv[rx], &yv[ry], &gv[rg], (h, w))?, x.shape(), x.device())?,
            (
                Storage::Cpu(CpuStorage::F64(xv)),
                Storage::Cpu(CpuStorage::F64(yv)),
                Storage::Cpu(CpuStorage::F64(gv)),
            ) => Tensor::from_vec(self.grad(&xv[rx], &yv[ry], &gv[rg], (h, w))?, x.shape(), x.device())?,
            _ => candle_core::bail!("fused max pool backward: CPU tensors of one dtype, f32 or f64"),
        };
        Ok(Some(dx))
    }
}
