//! Layers built from candle primitives and initialised from our seeded RNG.
//!
//! Why not `candle_nn::Linear` + `VarBuilder`? `VarBuilder` draws its initial values from an
//! unseeded RNG, and `candle_nn::LayerNorm` uses a kernel without a backward pass (see
//! ../shared/workloads.md, pitfalls 1 and 4). Every op used here has a gradient, checked by the
//! finite-difference test in `tests/gradcheck.rs`.

use candle_core::{DType, Device, Result, Tensor, Var, D};

use crate::rng::{self, SeededRng};

/// The named trainable tensors of a model, in a fixed order (the order is part of the
/// determinism contract: optimizers and weight files iterate it).
#[derive(Default)]
pub struct Params {
    pub vars: Vec<(String, Var)>,
}

impl Params {
    fn add(&mut self, name: String, values: Vec<f32>, shape: &[usize], dev: &Device, dtype: DType) -> Result<Var> {
        let t = Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?;
        let v = Var::from_tensor(&t)?;
        self.vars.push((name, v.clone()));
        Ok(v)
    }

    pub fn all(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    pub fn count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Overwrite every parameter from a map of tensors (a weights file); every name must be
    /// present with the same shape.
    pub fn load(&self, tensors: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in &self.vars {
            let t = tensors
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("weights file lacks tensor {name:?}")))?;
            if t.dims() != var.dims() {
                candle_core::bail!("tensor {name:?} has shape {:?}, the model needs {:?}", t.dims(), var.dims());
            }
            var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(())
    }

    pub fn to_map(&self) -> std::collections::HashMap<String, Tensor> {
        self.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
    }
}

/// What every layer constructor needs: where to put the parameters and where the randomness
/// comes from.
pub struct Init<'a> {
    params: Params,
    rng: &'a mut SeededRng,
    device: &'a Device,
    dtype: DType,
}

impl<'a> Init<'a> {
    pub fn new(rng: &'a mut SeededRng, device: &'a Device, dtype: DType) -> Self {
        Self { params: Params::default(), rng, device, dtype }
    }

    /// The parameters created so far, in creation order.
    pub fn finish(self) -> Params {
        self.params
    }

    fn uniform(&mut self, name: String, shape: &[usize], bound: f32) -> Result<Var> {
        let n = shape.iter().product();
        let values = rng::uniform(self.rng, n, bound);
        self.params.add(name, values, shape, self.device, self.dtype)
    }

    fn constant(&mut self, name: String, shape: &[usize], value: f32) -> Result<Var> {
        let n = shape.iter().product();
        self.params.add(name, vec![value; n], shape, self.device, self.dtype)
    }
}

/// y = x W + b, W of shape (in, out), initialised like PyTorch's default: U(±1/sqrt(in)).
/// (in, out) rather than PyTorch's (out, in) because it spares a transpose node in the graph
/// and a copy of every weight gradient: the MLP step got 1.3-1.6x faster.
pub struct Linear {
    pub weight: Var,
    pub bias: Var,
}

/// How a pass reads a layer's parameters: as the variables, so the pass records the graph a
/// backward needs (training), or detached (inference and evaluation: no graph, and the fused
/// ops keep nothing for a backward).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Train,
    Infer,
}

impl Pass {
    pub fn param(self, v: &Var) -> Tensor {
        match self {
            Pass::Train => v.as_tensor().clone(),
            Pass::Infer => v.as_tensor().detach(),
        }
    }
}

impl Linear {
    pub fn new(init: &mut Init, name: &str, d_in: usize, d_out: usize) -> Result<Self> {
        let bound = 1.0 / (d_in as f32).sqrt();
        let weight = init.uniform(format!("{name}.weight"), &[d_in, d_out], bound)?;
        let bias = init.uniform(format!("{name}.bias"), &[d_out], bound)?;
        Ok(Self { weight, bias })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.as_tensor();
        let y = match x.rank() {
            2 => x.matmul(w)?,
            _ => x.broadcast_matmul(w)?,
        };
        y.broadcast_add(&self.bias)
    }

    /// One row through the layer: forward x W (2·in·out) + bias (out); backward the weight
    /// gradient xᵀ dy (2·in·out), the bias gradient (out: a sum over rows) and, unless the
    /// layer reads the data (`input_grad` false), the input gradient dy Wᵀ (2·in·out).
    pub fn flops_per_row(&self, input_grad: bool) -> Flops {
        let d = self.weight.dims(); // (in, out)
        let (gemm, out) = (2 * (d[0] * d[1]) as u64, d[1] as u64);
        Flops { forward: gemm + out, backward: gemm + out + if input_grad { gemm } else { 0 } }
    }
}

/// 2-D convolution, kernel k x k, stride 1, "same" padding, with bias.
pub struct Conv2d {
    pub weight: Var,
    pub bias: Var,
    pub padding: usize,
}

impl Conv2d {
    pub fn new(init: &mut Init, name: &str, c_in: usize, c_out: usize, k: usize) -> Result<Self> {
        let bound = 1.0 / ((c_in * k * k) as f32).sqrt();
        let weight = init.uniform(format!("{name}.weight"), &[c_out, c_in, k, k], bound)?;
        let bias = init.uniform(format!("{name}.bias"), &[c_out], bound)?;
        Ok(Self { weight, bias, padding: k / 2 })
    }

    /// conv2d + bias: one fused op on the CPU (`fused::conv2d`), candle's ops elsewhere.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::fused::conv2d(x, &self.weight, &self.bias, self.padding, false)
    }

    /// `relu(forward(x))`, the ReLU inside the fused op on the CPU.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        crate::fused::conv2d(x, &self.weight, &self.bias, self.padding, true)
    }

    /// `max_pool2x2(relu(forward(x)))` for a pass without gradients: one forward-only op on
    /// the CPU (`fused::conv2d_relu_pool`; the weights are detached for it).
    pub fn infer_relu_pool(&self, x: &Tensor) -> Result<Tensor> {
        let (w, b) = (self.weight.as_tensor().detach(), self.bias.as_tensor().detach());
        crate::fused::conv2d_relu_pool(&x.detach(), &w, &b, self.padding)
    }

    /// One h x w input through the layer. Multiply-adds are counted where the kernel meets
    /// the image, not the zero padding (as XLA's cost analysis counts a convolution): along a
    /// side of n, the k taps of the n outputs read k·n - p(p+1) inputs. Forward 2·macs + bias
    /// (c_out·h·w); backward the kernel gradient (2·macs), the bias gradient (c_out·h·w) and,
    /// unless the layer reads the data, the input gradient (2·macs).
    pub fn flops_per_sample(&self, h: usize, w: usize, input_grad: bool) -> Flops {
        let d = self.weight.dims(); // (c_out, c_in, k, k)
        let (k, p) = (d[2], self.padding);
        let taps = |n: usize| (k * n - p * (p + 1)) as u64;
        let macs2 = 2 * (d[0] * d[1]) as u64 * taps(h) * taps(w);
        let bias = (d[0] * h * w) as u64;
        Flops { forward: macs2 + bias, backward: macs2 + bias + if input_grad { macs2 } else { 0 } }
    }
}

/// Layer normalisation over the last dimension (ε = 1e-5): `fused::norm::layer_norm`, one op
/// each way on the CPU, and candle-nn's `layer_norm_slow`, built from primitives, elsewhere
/// (candle_nn::ops::layer_norm has no backward).
pub struct LayerNorm {
    pub gain: Var,
    pub shift: Var,
}

impl LayerNorm {
    pub fn new(init: &mut Init, name: &str, d: usize) -> Result<Self> {
        let gain = init.constant(format!("{name}.weight"), &[d], 1.0)?;
        let shift = init.constant(format!("{name}.bias"), &[d], 0.0)?;
        Ok(Self { gain, shift })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_in(Pass::Train, x)
    }

    pub fn forward_in(&self, pass: Pass, x: &Tensor) -> Result<Tensor> {
        crate::fused::norm::layer_norm(x, &pass.param(&self.gain), &pass.param(&self.shift), 1e-5)
    }

    /// One row of d. Forward 7d + 1: two means (d each), x - μ, its square, the division by
    /// σ, the gain and the shift (d each), + ε (the square root is not counted). Backward
    /// 11d: shift and gain gradients (d and 2d, sums over rows), dy·g, the two means of the
    /// input gradient and the product inside one, x̂ times it, two subtractions, / σ.
    pub fn flops_per_row(&self) -> Flops {
        let d = self.gain.elem_count() as u64;
        Flops { forward: 7 * d + 1, backward: 11 * d }
    }
}

/// A lookup table of `n` vectors of size `d`, initialised N(0, 1) like PyTorch's embedding
/// (approximated by U(±sqrt(3)), which has unit variance).
pub struct Embedding {
    pub table: Var,
}

impl Embedding {
    pub fn new(init: &mut Init, name: &str, n: usize, d: usize) -> Result<Self> {
        let table = init.uniform(format!("{name}.weight"), &[n, d], 3f32.sqrt())?;
        Ok(Self { table })
    }

    /// ids: (b, t) u32 -> (b, t, d)
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_in(Pass::Train, ids)
    }

    pub fn forward_in(&self, pass: Pass, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let d = self.table.dim(D::Minus1)?;
        pass.param(&self.table).index_select(&flat, 0)?.reshape((b, t, d))
    }

    /// One looked-up row of d: the lookup is a gather (not counted); backward adds the row's
    /// gradient into the table (d).
    pub fn flops_per_row(&self) -> Flops {
        Flops { forward: 0, backward: self.table.dims()[1] as u64 } // table: (n, d)
    }
}

/// 2x2 max pooling, stride 2: one fused op on the CPU (`fused::max_pool2x2`), reshape + two
/// `max` reductions elsewhere; either way each window's gradient goes to every input equal to
/// its maximum.
///
/// Why not `Tensor::max_pool2d`? Its backward in candle 0.11.1 multiplies the incoming
/// gradient by the *fraction* of maxima in each window (1/4 for a unique maximum) where it
/// should divide by their count, so every gradient that flows through a pool is 4x too small
/// (16x through two). Found by `tests/gradcheck.rs`.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    crate::fused::max_pool2x2(x)
}

/// `max_pool2x2` of c x h x w: 3 compares per output forward; backward a compare with the
/// maximum and a select per input (8 per output).
pub fn max_pool2x2_flops(c: usize, h: usize, w: usize) -> Flops {
    let out = (c * (h / 2) * (w / 2)) as u64;
    Flops { forward: 3 * out, backward: 8 * out }
}

/// ReLU over n values: a max forward; a compare and a select backward.
pub fn relu_flops(n: usize) -> Flops {
    Flops { forward: n as u64, backward: 2 * n as u64 }
}

/// Softmax over a row of n: max, subtract, sum, divide forward (4n - 2; exp is not counted);
/// backward y·dy, its sum, dy minus it, times y (4n - 1).
pub fn softmax_flops(n: usize) -> Flops {
    let n = n as u64;
    Flops { forward: 4 * n - 2, backward: 4 * n - 1 }
}

/// Model FLOPs of one sample (or one row) through a layer, as the operations are executed:
/// a multiply-add is 2, any other arithmetic op, compare or select on one element is 1;
/// exp, log and square root are not counted (XLA's cost analysis counts them apart, as
/// "transcendentals"), nor are copies, transposes and gathers. `backward` is what the
/// gradient step adds: weight and bias gradients, and input gradients where a gradient
/// flows further back, never into the data (candle 0.11.1's backprop computes the first
/// layer's data gradient anyway, wasted work that is not counted). The loss and the
/// optimizer are not counted. bench/peers/README.md compares these counts with XLA's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flops {
    pub forward: u64,
    pub backward: u64,
}

impl Flops {
    /// Forward + backward: the FLOPs of one training sample.
    pub fn train(self) -> u64 {
        self.forward + self.backward
    }
}

impl std::ops::Add for Flops {
    type Output = Flops;
    fn add(self, o: Flops) -> Flops {
        Flops { forward: self.forward + o.forward, backward: self.backward + o.backward }
    }
}

impl std::ops::Mul<usize> for Flops {
    type Output = Flops;
    fn mul(self, n: usize) -> Flops {
        Flops { forward: self.forward * n as u64, backward: self.backward * n as u64 }
    }
}

impl std::iter::Sum for Flops {
    fn sum<I: Iterator<Item = Flops>>(it: I) -> Flops {
        it.fold(Flops::default(), |a, b| a + b)
    }
}
