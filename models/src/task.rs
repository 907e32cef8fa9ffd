//! What a batch, a loss and an evaluation are for each kind of data. A `Task` owns its data;
//! a `Net` owns its parameters; `train::train` connects them. Three tasks serve five
//! workloads: classification (digits, Fashion-MNIST MLP and CNN), next-character prediction
//! (charlm) and reconstruction (the autoencoder).

use candle_core::{Device, Result, Tensor, D};

use crate::data::{hum::HumSet, ClassSet};
use crate::layers::Params;
use crate::metrics;

/// A model: a forward pass over its parameters.
pub trait Net: Send {
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    /// `forward` for a pass that needs no gradient (inference, evaluation): the same values,
    /// computed with forward-only ops where a model has them (the CNN's conv + ReLU + pool).
    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x)
    }
    fn params(&self) -> &Params;
    /// Model FLOPs of one forward pass per inference query (or training sample), counted
    /// per layer as executed (`layers::Flops` says what counts).
    fn forward_flops_per_sample(&self) -> u64;
    /// Model FLOPs of one training sample: the forward pass and the backward pass, per layer
    /// as executed (no gradient with respect to the data; loss and optimizer not counted).
    fn train_flops_per_sample(&self) -> u64;
}

pub struct Batch {
    pub x: Tensor,
    pub y: Tensor,
}

pub trait Task: Send + Sync {
    /// Number of training samples the selection can draw from.
    fn train_len(&self) -> usize;
    /// Bytes one training sample occupies as stored (inputs + target).
    fn bytes_per_sample(&self) -> u64;
    fn batch(&self, idx: &[usize], dev: &Device) -> Result<Batch>;
    /// A scalar loss tensor.
    fn loss(&self, out: &Tensor, batch: &Batch) -> Result<Tensor>;
    /// Quality on the held-out set.
    fn evaluate(&self, net: &dyn Net, dev: &Device) -> Result<f64>;
    /// For data pruning: (inputs, labels) of the training set when it is labelled.
    fn labelled(&self) -> Option<&ClassSet> {
        None
    }
    /// For an outside trainer (Runner Protocol v1.1): samples by index, held-out inputs, metric.
    fn served(&self) -> Option<&dyn crate::served::Served> {
        None
    }
}

fn gather_rows(x: &[f32], dim: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * dim);
    for &i in idx {
        out.extend_from_slice(&x[i * dim..(i + 1) * dim]);
    }
    out
}

/// Forward `x` (rows of `dim`) through `net` in chunks, returning the outputs flattened.
fn forward_chunks(net: &dyn Net, x: &[f32], dim: usize, dev: &Device) -> Result<Vec<f32>> {
    let rows = x.len() / dim;
    let mut out = Vec::new();
    for start in (0..rows).step_by(500) {
        let n = (rows - start).min(500);
        let t = Tensor::from_slice(&x[start * dim..(start + n) * dim], (n, dim), dev)?;
        out.extend(net.infer(&t)?.detach().flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

pub struct Classify {
    pub train: ClassSet,
    pub test: ClassSet,
}

impl Task for Classify {
    fn served(&self) -> Option<&dyn crate::served::Served> {
        Some(self)
    }
    fn train_len(&self) -> usize {
        self.train.len()
    }
    fn bytes_per_sample(&self) -> u64 {
        // u8 pixels (digits: 4-bit values stored as bytes) + a one-byte label
        self.train.dim as u64 + 1
    }
    fn batch(&self, idx: &[usize], dev: &Device) -> Result<Batch> {
        let x = Tensor::from_vec(gather_rows(&self.train.x, self.train.dim, idx), (idx.len(), self.train.dim), dev)?;
        let y: Vec<u32> = idx.iter().map(|&i| self.train.y[i]).collect();
        Ok(Batch { x, y: Tensor::new(y, dev)? })
    }
    fn loss(&self, out: &Tensor, batch: &Batch) -> Result<Tensor> {
        crate::fused::cross_entropy(out, &batch.y)
    }
    fn evaluate(&self, net: &dyn Net, dev: &Device) -> Result<f64> {
        let logits = forward_chunks(net, &self.test.x, self.test.dim, dev)?;
        Ok(metrics::accuracy(&logits, self.test.classes, &self.test.y))
    }
    fn labelled(&self) -> Option<&ClassSet> {
        Some(&self.train)
    }
}

/// Next-character prediction. Training sample i is the window of `context` + 1 characters
/// starting at position i of the training text; evaluation is the mean cross-entropy (nats
/// per character) over fixed non-overlapping windows of the held-out text.
pub struct NextChar {
    pub train: Vec<u32>,
    pub held_out: Vec<u32>,
    pub context: usize,
    /// At most this many held-out windows are evaluated (fixed, from the start).
    pub eval_windows: usize,
}

impl NextChar {
    fn windows(&self, text: &[u32], starts: &[usize], dev: &Device) -> Result<Batch> {
        let c = self.context;
        let mut x = Vec::with_capacity(starts.len() * c);
        let mut y = Vec::with_capacity(starts.len() * c);
        for &s in starts {
            x.extend_from_slice(&text[s..s + c]);
            y.extend_from_slice(&text[s + 1..s + c + 1]);
        }
        Ok(Batch { x: Tensor::from_vec(x, (starts.len(), c), dev)?, y: Tensor::from_vec(y, (starts.len(), c), dev)? })
    }

    /// Mean nats per character of `net` over `windows` held-out windows.
    pub fn held_out_loss(&self, net: &dyn Net, windows: usize, dev: &Device) -> Result<f64> {
        let starts: Vec<usize> = (0..windows).map(|w| w * self.context).collect();
        let mut total = 0.0;
        for chunk in starts.chunks(128) {
            let b = self.windows(&self.held_out, chunk, dev)?;
            let out = net.infer(&b.x)?.detach();
            total += self.loss(&out, &b)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        }
        Ok(total / windows as f64)
    }
}

impl Task for NextChar {
    fn served(&self) -> Option<&dyn crate::served::Served> {
        Some(self)
    }
    fn train_len(&self) -> usize {
        self.train.len() - self.context - 1
    }
    fn bytes_per_sample(&self) -> u64 {
        // context + 1 characters, one byte each (the text is ASCII)
        self.context as u64 + 1
    }
    fn batch(&self, idx: &[usize], dev: &Device) -> Result<Batch> {
        self.windows(&self.train, idx, dev)
    }
    fn loss(&self, out: &Tensor, batch: &Batch) -> Result<Tensor> {
        let v = out.dim(D::Minus1)?;
        crate::fused::cross_entropy(&out.reshape(((), v))?, &batch.y.flatten_all()?)
    }
    fn evaluate(&self, net: &dyn Net, dev: &Device) -> Result<f64> {
        let max = (self.held_out.len() - 1) / self.context;
        self.held_out_loss(net, self.eval_windows.min(max), dev)
    }
}

/// Reconstruction of normal machine sounds; quality is the ROC-AUC of the reconstruction
/// error as an anomaly score on a held-out set of normal and anomalous vectors.
pub struct Reconstruct {
    pub data: HumSet,
    pub dim: usize,
}

impl Reconstruct {
    /// Mean squared reconstruction error per row of `x`.
    pub fn scores(&self, net: &dyn Net, x: &[f32], dev: &Device) -> Result<Vec<f32>> {
        let out = forward_chunks(net, x, self.dim, dev)?;
        Ok(out
            .chunks_exact(self.dim)
            .zip(x.chunks_exact(self.dim))
            .map(|(o, i)| o.iter().zip(i).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / self.dim as f32)
            .collect())
    }
}

impl Task for Reconstruct {
    fn served(&self) -> Option<&dyn crate::served::Served> {
        Some(self)
    }
    fn train_len(&self) -> usize {
        self.data.train.len() / self.dim
    }
    fn bytes_per_sample(&self) -> u64 {
        4 * self.dim as u64 // f32 features
    }
    fn batch(&self, idx: &[usize], dev: &Device) -> Result<Batch> {
        let x = Tensor::from_vec(gather_rows(&self.data.train, self.dim, idx), (idx.len(), self.dim), dev)?;
        Ok(Batch { y: x.clone(), x })
    }
    fn loss(&self, out: &Tensor, batch: &Batch) -> Result<Tensor> {
        candle_nn::loss::mse(out, &batch.y)
    }
    fn evaluate(&self, net: &dyn Net, dev: &Device) -> Result<f64> {
        let scores = self.scores(net, &self.data.test, dev)?;
        Ok(metrics::roc_auc(&scores, &self.data.test_anomalous))
    }
}
