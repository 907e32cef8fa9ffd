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

    pub fn flops_per_row(&self) -> u64 {
        let d = self.weight.dims();
        2 * (d[0] * d[1]) as u64 + d[0] as u64
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

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv2d(&self.weight, self.padding, 1, 1, 1)?;
        y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)
    }
}

/// Layer normalisation over the last dimension, from primitives (candle_nn::ops::layer_norm
/// has no backward).
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
        candle_nn::ops::layer_norm_slow(x, &self.gain, &self.shift, 1e-5)
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
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let d = self.table.dim(D::Minus1)?;
        self.table.index_select(&flat, 0)?.reshape((b, t, d))
    }
}

/// 2x2 max pooling, stride 2, from reshape + max reductions.
///
/// Why not `Tensor::max_pool2d`? Its backward in candle 0.11.1 multiplies the incoming
/// gradient by the *fraction* of maxima in each window (1/4 for a unique maximum) where it
/// should divide by their count, so every gradient that flows through a pool is 4x too small
/// (16x through two). Found by `tests/gradcheck.rs`. The reduction `max` has a correct
/// backward (the gradient goes to the maximum).
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("max_pool2x2 needs even height and width, got {h}x{w}");
    }
    x.reshape((b, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
}
