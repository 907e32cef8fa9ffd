//! Multi-layer perceptron: Linear layers with ReLU between them, none after the last.
//! Used by `digits-mlp` (64-128-10), `fmnist-mlp` (784-128-10) and, with the MLPerf Tiny
//! anomaly-detection shape, by the autoencoder (see `autoencoder.rs`).

use candle_core::{Result, Tensor};

use crate::layers::{relu_flops, Flops, Init, Linear, Params};
use crate::task::Net;

pub struct Mlp {
    layers: Vec<Linear>,
    params: Params,
}

impl Mlp {
    /// `sizes` = [input, hidden..., output].
    pub fn new(sizes: &[usize], mut init: Init) -> Result<Self> {
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        for (i, w) in sizes.windows(2).enumerate() {
            layers.push(Linear::new(&mut init, &format!("fc{i}"), w[0], w[1])?);
        }
        let params = init.finish();
        Ok(Self { layers, params })
    }

    /// Per sample: every Linear (the first computes no input gradient) and a ReLU on the
    /// output of every layer but the last.
    pub fn flops(&self) -> Flops {
        let last = self.layers.len() - 1;
        let relu = |i: usize, l: &Linear| if i < last { relu_flops(l.bias.elem_count()) } else { Flops::default() };
        self.layers.iter().enumerate().map(|(i, l)| l.flops_per_row(i > 0) + relu(i, l)).sum()
    }
}

impl Net for Mlp {
    /// x: (batch, input) -> (batch, output)
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // One fused op per layer on the CPU (`fused::linear`); candle's ops elsewhere.
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = crate::fused::linear(&h, layer.weight.as_tensor(), layer.bias.as_tensor(), i < last)?;
        }
        Ok(h)
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn forward_flops_per_sample(&self) -> u64 {
        self.flops().forward
    }

    fn train_flops_per_sample(&self) -> u64 {
        self.flops().train()
    }
}
