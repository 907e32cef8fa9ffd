//! Inference workloads: a trained model (weights trained by effbench itself and shipped as
//! safetensors) answers a fixed set of 1,000 queries at a given batch size. Loading the
//! weights and preparing the query tensors happen before the measured window; a pass is the
//! measured work, and its answers are scored so a fast but wrong backend cannot pass.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, D};

use crate::data::DataConfig;
use crate::task::Net;
use crate::workload::{Arch, Kind, WorkloadSpec};
use crate::{metrics, ModelError, Result};

/// Where the shipped weights are: `EFFBENCH_WEIGHTS_DIR`, else this crate's `weights/`.
pub fn default_weights_dir() -> PathBuf {
    std::env::var_os("EFFBENCH_WEIGHTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/weights")))
}

pub fn weights_path(dir: &Path, spec: &WorkloadSpec) -> PathBuf {
    dir.join(format!("{}.safetensors", spec.weights_name()))
}

enum Scorer {
    Accuracy { labels: Vec<u32>, classes: usize },
    NextCharLoss { targets: Vec<u32> },
    Auc { anomalous: Vec<bool>, inputs: Vec<f32>, dim: usize },
}

pub struct InferSession {
    net: Box<dyn Net>,
    inputs: QueryInputs,
    batch: usize,
    batches: Vec<Tensor>,
    scorer: Scorer,
    queries: usize,
    input_bytes_per_query: u64,
}

#[derive(Clone, Debug)]
pub struct PassOutcome {
    pub queries: u64,
    pub quality: f64,
    /// Bytes moved per query: inputs handed to the model plus outputs read back.
    pub bytes_per_query: u64,
}

impl InferSession {
    pub fn new(spec: &WorkloadSpec, data: &DataConfig, weights_dir: &Path, dev: &Device) -> Result<InferSession> {
        if spec.kind != Kind::Infer {
            return Err(ModelError::Unsupported(format!("{} is not an inference workload", spec.id)));
        }
        let n = spec.query_count();
        let net = spec.build_net(0, dev)?;
        let wpath = weights_path(weights_dir, spec);
        let tensors = candle_core::safetensors::load(&wpath, dev).map_err(|e| {
            ModelError::bad_data(
                &wpath,
                format!("{e}; the weights are made by `effbench weights` (see models/weights/README.md)"),
            )
        })?;
        net.params().load(&tensors)?;
        let (inputs, dim, scorer): (QueryValues, usize, Scorer) = match spec.arch {
            Arch::DigitsMlp => {
                return Err(ModelError::Unsupported("digits-mlp has no inference workload".into()));
            }
            Arch::FmnistMlp | Arch::FmnistCnn => {
                let test = crate::data::idx::read_split(&data.shipped.join("fashion-mnist-subset"), "t10k")?.head(n);
                let dim = test.dim;
                (QueryValues::F32(test.x), dim, Scorer::Accuracy { labels: test.y, classes: test.classes })
            }
            Arch::CharLm => {
                let text = crate::data::text::CharText::read(&data.shipped.join("austen/pride-and-prejudice.txt.gz"))?;
                let held = &text.ids[text.ids.len() * 9 / 10..];
                let c = crate::workload::CHARLM.context;
                let mut x = Vec::with_capacity(n * c);
                let mut targets = Vec::with_capacity(n);
                for q in 0..n {
                    x.extend_from_slice(&held[q * c..(q + 1) * c]);
                    targets.push(held[(q + 1) * c]);
                }
                (QueryValues::U32(x), c, Scorer::NextCharLoss { targets })
            }
            Arch::MachineAe => {
                let hum = crate::data::hum::generate();
                let dim = crate::data::hum::DIM;
                let inputs = hum.test[..n * dim].to_vec();
                (
                    QueryValues::F32(inputs.clone()),
                    dim,
                    Scorer::Auc { anomalous: hum.test_anomalous[..n].to_vec(), inputs, dim },
                )
            }
        };
        let batch = spec.batch.max(1);
        let inputs = QueryInputs { dim, values: inputs };
        let batches = inputs.batches(batch, dev)?;
        Ok(InferSession { net, inputs, batch, batches, scorer, queries: n, input_bytes_per_query: 4 * dim as u64 })
    }

    /// One pass over every query; the answers are copied back to the host and scored.
    pub fn pass(&self) -> Result<PassOutcome> {
        let (outputs, out_per_query) = self.outputs()?;
        Ok(PassOutcome {
            queries: self.queries as u64,
            quality: self.score(&outputs, out_per_query),
            bytes_per_query: self.input_bytes_per_query + 4 * out_per_query as u64,
        })
    }

    /// This session's answers to every query, row-major, and the number of values per query.
    /// A language model's answer is its prediction after the last character of each context.
    /// These are the reference outputs another backend's answers are checked against.
    pub fn outputs(&self) -> Result<(Vec<f32>, usize)> {
        let mut outputs: Vec<f32> = Vec::new();
        let mut out_per_query = 0;
        for b in &self.batches {
            let mut y = self.net.infer(b)?;
            if y.rank() == 3 {
                let t = y.dim(1)?;
                y = y.narrow(1, t - 1, 1)?.squeeze(1)?;
            }
            out_per_query = y.dim(D::Minus1)?;
            if outputs.is_empty() {
                outputs.reserve_exact(self.queries * out_per_query);
            }
            append(&mut outputs, &y.flatten_all()?)?;
        }
        Ok((outputs, out_per_query))
    }

    /// The workload's quality of a full set of answers (`out_per_query` values per query, in
    /// query order), whoever computed them.
    pub fn score(&self, outputs: &[f32], out_per_query: usize) -> f64 {
        match &self.scorer {
            Scorer::Accuracy { labels, classes } => metrics::accuracy(outputs, *classes, labels),
            Scorer::NextCharLoss { targets } => mean_nll(outputs, out_per_query, targets),
            Scorer::Auc { anomalous, inputs, dim } => {
                let scores: Vec<f32> = outputs
                    .chunks_exact(*dim)
                    .zip(inputs.chunks_exact(*dim))
                    .map(|(o, i)| mean_sq_diff(o, i))
                    .collect();
                metrics::roc_auc(&scores, anomalous)
            }
        }
    }

    /// The fixed query inputs, on the host, in query order.
    pub fn inputs(&self) -> &QueryInputs {
        &self.inputs
    }

    /// Queries per batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn queries(&self) -> usize {
        self.queries
    }

    pub fn net(&self) -> &dyn Net {
        self.net.as_ref()
    }
}

/// The query inputs of an inference workload: `rows` x `dim`, row-major.
#[derive(Clone, Debug)]
pub struct QueryInputs {
    pub dim: usize,
    pub values: QueryValues,
}

/// Pixels and features are f32; a language model's contexts are character ids.
#[derive(Clone, Debug)]
pub enum QueryValues {
    F32(Vec<f32>),
    U32(Vec<u32>),
}

impl QueryInputs {
    pub fn rows(&self) -> usize {
        match &self.values {
            QueryValues::F32(v) => v.len() / self.dim,
            QueryValues::U32(v) => v.len() / self.dim,
        }
    }

    fn batches(&self, batch: usize, dev: &Device) -> Result<Vec<Tensor>> {
        let (rows, dim) = (self.rows(), self.dim);
        let mut out = Vec::new();
        for start in (0..rows).step_by(batch) {
            let n = batch.min(rows - start);
            let r = start * dim..(start + n) * dim;
            out.push(match &self.values {
                QueryValues::F32(v) => Tensor::from_slice(&v[r], (n, dim), dev)?,
                QueryValues::U32(v) => Tensor::from_slice(&v[r], (n, dim), dev)?,
            });
        }
        Ok(out)
    }
}

/// Mean negative log-likelihood (nats) of `targets` under rows of logits.
fn mean_nll(logits: &[f32], classes: usize, targets: &[u32]) -> f64 {
    let mut total = 0.0;
    for (row, &t) in logits.chunks_exact(classes).zip(targets) {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
        total += lse - row[t as usize] as f64;
    }
    total / targets.len().max(1) as f64
}

/// `y`'s f32 values (rank 1) onto `out`: straight from a contiguous CPU tensor's storage (one
/// copy), else through `to_vec1` (another device, or a strided view).
fn append(out: &mut Vec<f32>, y: &Tensor) -> Result<()> {
    {
        let (storage, layout) = y.storage_and_layout();
        if let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            out.extend_from_slice(&v[a..b]);
            return Ok(());
        }
    }
    out.extend(y.to_vec1::<f32>()?);
    Ok(())
}

/// The mean squared difference of two rows (an autoencoder's anomaly score), summed in 16
/// lanes so that it vectorises; the order is fixed, so the score is the same on every machine.
fn mean_sq_diff(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut tail = 0f32;
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        tail += (x - y) * (x - y);
    }
    for (x, y) in ac.zip(bc) {
        for ((s, p), q) in acc.iter_mut().zip(x).zip(y) {
            *s += (p - q) * (p - q);
        }
    }
    (acc.iter().sum::<f32>() + tail) / a.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sq_diff_is_the_mean_of_squares_for_every_length_and_append_copies_views_too() {
        for n in 1..=40 {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want = a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / n as f64;
            let got = mean_sq_diff(&a, &b) as f64;
            assert!((got - want).abs() <= 1e-6 * want.max(1e-30), "n {n}: {got} against {want}");
        }
        let t = Tensor::arange(0f32, 12., &Device::Cpu).unwrap().reshape((3, 4)).unwrap();
        let mut out = vec![-1.0];
        append(&mut out, &t.narrow(1, 1, 2).unwrap().flatten_all().unwrap()).unwrap();
        append(&mut out, &t.narrow(0, 2, 1).unwrap().flatten_all().unwrap()).unwrap();
        assert_eq!(out, [-1., 1., 2., 5., 6., 9., 10., 8., 9., 10., 11.]);
    }
}
