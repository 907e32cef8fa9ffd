//! Small CNN for 28x28 greyscale images: 2 x (conv3x3 + ReLU + maxpool2), 16 then 32
//! channels, then FC 1568-64-10. Convolutions are stride 1 with "same" padding and 2x2 pools
//! on even sizes, so candle's conv2d backward (pitfall 3 in workloads.md) is never asked for an
//! output padding. Pooling is `layers::max_pool2x2`, not candle's `max_pool2d`, whose backward
//! scales gradients by 1/4 (see there).

use candle_core::{Result, Tensor};

use crate::fused;
use crate::layers::{max_pool2x2, max_pool2x2_flops, relu_flops, Conv2d, Flops, Init, Linear, Params};
use crate::task::Net;

pub struct Cnn {
    c1: Conv2d,
    c2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    side: usize,
    params: Params,
}

impl Cnn {
    pub fn new(side: usize, classes: usize, mut init: Init) -> Result<Self> {
        let c1 = Conv2d::new(&mut init, "conv1", 1, 16, 3)?;
        let c2 = Conv2d::new(&mut init, "conv2", 16, 32, 3)?;
        let flat = 32 * (side / 4) * (side / 4);
        let fc1 = Linear::new(&mut init, "fc1", flat, 64)?;
        let fc2 = Linear::new(&mut init, "fc2", 64, classes)?;
        let params = init.finish();
        Ok(Self { c1, c2, fc1, fc2, side, params })
    }

    /// Per image: conv1 (on the data: no input gradient), ReLU and pool on 16 x s x s, conv2,
    /// ReLU and pool on 32 x s/2 x s/2, fc1 + ReLU, fc2.
    pub fn flops(&self) -> Flops {
        let (s, h) = (self.side, self.side / 2);
        let (c1, c2) = (self.c1.bias.elem_count(), self.c2.bias.elem_count());
        let stage1 = self.c1.flops_per_sample(s, s, false) + relu_flops(c1 * s * s) + max_pool2x2_flops(c1, s, s);
        let stage2 = self.c2.flops_per_sample(h, h, true) + relu_flops(c2 * h * h) + max_pool2x2_flops(c2, h, h);
        let hidden = relu_flops(self.fc1.bias.elem_count());
        let fc = self.fc1.flops_per_row(true) + hidden + self.fc2.flops_per_row(true);
        stage1 + stage2 + fc
    }
}

impl Net for Cnn {
    /// x: (batch, side*side) pixels in [0, 1] -> (batch, classes) logits
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let h = x.reshape((b, 1, self.side, self.side))?;
        let h = max_pool2x2(&self.c1.forward_relu(&h)?)?;
        let h = max_pool2x2(&self.c2.forward_relu(&h)?)?;
        let h = h.flatten_from(1)?;
        let h = fused::linear(&h, self.fc1.weight.as_tensor(), self.fc1.bias.as_tensor(), true)?;
        fused::linear(&h, self.fc2.weight.as_tensor(), self.fc2.bias.as_tensor(), false)
    }

    /// `forward` without gradients: each conv + ReLU + pool stage in one forward-only op.
    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let h = x.reshape((b, 1, self.side, self.side))?;
        let h = self.c2.infer_relu_pool(&self.c1.infer_relu_pool(&h)?)?;
        let h = h.flatten_from(1)?;
        let (w1, b1) = (self.fc1.weight.as_tensor().detach(), self.fc1.bias.as_tensor().detach());
        let (w2, b2) = (self.fc2.weight.as_tensor().detach(), self.fc2.bias.as_tensor().detach());
        fused::linear(&fused::linear(&h, &w1, &b1, true)?, &w2, &b2, false)
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
