//! A training workload served to an outside trainer (Runner Protocol v1.1, `train`): the
//! training samples by index, exactly as [`Task::batch`] builds them, the held-out inputs
//! without their labels, and the workload's own metric applied to the trainer's outputs. The
//! harness owns the conversation; this module only knows the data.
//!
//! Bytes are raw little-endian, row-major, no header: the protocol's tensor files. A batch is
//! written into a caller's slice of exactly its size (reused from batch to batch, see
//! [`batch_len`]), so serving a batch is one pass over its rows, with no allocation and no
//! clearing once the buffer has grown.

use crate::metrics;
use crate::task::{Classify, NextChar, Reconstruct, Task};

/// Element type of a served tensor (numpy names on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    I64,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::I64 => "int64",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::I64 => 8,
        }
    }
}

/// A tensor's declaration with a free first (batch) dimension: dtype and the rest of the shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decl {
    pub dtype: Dtype,
    /// The shape after the batch dimension (empty for one value per sample).
    pub tail: Vec<usize>,
}

impl Decl {
    pub fn per_row(&self) -> usize {
        self.tail.iter().product()
    }
}

/// What an outside trainer is served. Implemented for the three tasks.
pub trait Served: Sync {
    /// One training sample's input.
    fn x(&self) -> Decl;
    /// One training sample's target; `None` when the target is the input (the autoencoder).
    fn y(&self) -> Option<Decl>;
    /// Writes samples `idx`'s inputs into `x`, which holds exactly [`batch_len`] bytes. Every
    /// index must be below [`Task::train_len`] (the caller checks); a slice of another length
    /// panics.
    fn write_x(&self, idx: &[usize], x: &mut [u8]);
    /// The same for the targets (`y` is empty without a target).
    fn write_y(&self, idx: &[usize], y: &mut [u8]);
    /// Both.
    fn write_batch(&self, idx: &[usize], x: &mut [u8], y: &mut [u8]) {
        self.write_x(idx, x);
        self.write_y(idx, y);
    }
    /// Training sample `i`'s input as it is stored, when those bytes are already the wire
    /// format (float32 little-endian, on a little-endian machine): a batch file can then be
    /// written straight from the task's memory by the kernel (one copy) instead of gathered
    /// into a buffer first (two). `None`: gather with [`Served::write_x`].
    fn x_row_bytes(&self, i: usize) -> Option<&[u8]> {
        let _ = i;
        None
    }
    /// The held-out inputs (no labels): their declaration and rows.
    fn eval_x(&self) -> Decl;
    fn eval_rows(&self) -> usize;
    fn write_eval_inputs(&self, out: &mut Vec<u8>);
    /// The trainer's output for the held-out rows, per row (after `eval_rows`), float32.
    fn eval_out(&self) -> Vec<usize>;
    /// The workload's metric on the trainer's outputs (`eval_rows × per row` values). NaN when
    /// any value is not finite: such a model never meets a target.
    fn score(&self, outputs: &[f32]) -> f64;
}

/// Bytes of `rows` samples of `decl` in a batch file.
pub fn batch_len(decl: &Decl, rows: usize) -> usize {
    rows * decl.per_row() * decl.dtype.size()
}

fn put_f32(out: &mut Vec<u8>, v: &[f32]) {
    let at = out.len();
    out.resize(at + v.len() * 4, 0);
    fill_f32(&mut out[at..], v);
}

fn put_ids(out: &mut Vec<u8>, v: &[u32]) {
    let at = out.len();
    out.resize(at + v.len() * 8, 0);
    fill_ids(&mut out[at..], v);
}

/// `v` as little-endian bytes into `out` (exactly `4 v.len()` bytes). Written as a zip over
/// fixed-size chunks so the compiler turns it into a plain copy on little-endian machines
/// (per-value `extend_from_slice` was ~3 ms per 6.4 MB batch, perf, release build).
fn fill_f32(out: &mut [u8], v: &[f32]) {
    assert_eq!(out.len(), v.len() * 4, "batch slice of the wrong size");
    for (o, x) in out.chunks_exact_mut(4).zip(v) {
        o.copy_from_slice(&x.to_le_bytes());
    }
}

/// `v`'s bytes as stored, when they are the wire's float32 little-endian.
fn le_bytes(v: &[f32]) -> Option<&[u8]> {
    cfg!(target_endian = "little").then(|| bytemuck::cast_slice(v))
}

fn fill_ids(out: &mut [u8], v: &[u32]) {
    assert_eq!(out.len(), v.len() * 8, "batch slice of the wrong size");
    for (o, &x) in out.chunks_exact_mut(8).zip(v) {
        o.copy_from_slice(&i64::from(x).to_le_bytes());
    }
}

fn finite(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite())
}

impl Served for Classify {
    fn x(&self) -> Decl {
        Decl { dtype: Dtype::F32, tail: vec![self.train.dim] }
    }
    fn y(&self) -> Option<Decl> {
        Some(Decl { dtype: Dtype::I64, tail: vec![] })
    }
    fn write_x(&self, idx: &[usize], x: &mut [u8]) {
        let d = self.train.dim;
        assert_eq!(x.len(), idx.len() * d * 4, "batch slice of the wrong size");
        for (&i, xo) in idx.iter().zip(x.chunks_exact_mut(d * 4)) {
            fill_f32(xo, &self.train.x[i * d..(i + 1) * d]);
        }
    }
    fn write_y(&self, idx: &[usize], y: &mut [u8]) {
        assert_eq!(y.len(), idx.len() * 8, "batch slice of the wrong size");
        for (&i, yo) in idx.iter().zip(y.chunks_exact_mut(8)) {
            yo.copy_from_slice(&i64::from(self.train.y[i]).to_le_bytes());
        }
    }
    fn x_row_bytes(&self, i: usize) -> Option<&[u8]> {
        let d = self.train.dim;
        le_bytes(&self.train.x[i * d..(i + 1) * d])
    }
    fn eval_x(&self) -> Decl {
        Decl { dtype: Dtype::F32, tail: vec![self.test.dim] }
    }
    fn eval_rows(&self) -> usize {
        self.test.len()
    }
    fn write_eval_inputs(&self, out: &mut Vec<u8>) {
        put_f32(out, &self.test.x);
    }
    fn eval_out(&self) -> Vec<usize> {
        vec![self.test.classes]
    }
    fn score(&self, outputs: &[f32]) -> f64 {
        if !finite(outputs) {
            return f64::NAN;
        }
        metrics::accuracy(outputs, self.test.classes, &self.test.y)
    }
}

impl NextChar {
    /// Held-out windows evaluated: the same count as [`Task::evaluate`].
    fn served_windows(&self) -> usize {
        self.eval_windows.min((self.held_out.len() - 1) / self.context)
    }
}

impl Served for NextChar {
    fn x(&self) -> Decl {
        Decl { dtype: Dtype::I64, tail: vec![self.context] }
    }
    fn y(&self) -> Option<Decl> {
        Some(Decl { dtype: Dtype::I64, tail: vec![self.context] })
    }
    fn write_x(&self, idx: &[usize], x: &mut [u8]) {
        let c = self.context;
        assert_eq!(x.len(), idx.len() * c * 8, "batch slice of the wrong size");
        for (&s, xo) in idx.iter().zip(x.chunks_exact_mut(c * 8)) {
            fill_ids(xo, &self.train[s..s + c]);
        }
    }
    fn write_y(&self, idx: &[usize], y: &mut [u8]) {
        let c = self.context;
        assert_eq!(y.len(), idx.len() * c * 8, "batch slice of the wrong size");
        for (&s, yo) in idx.iter().zip(y.chunks_exact_mut(c * 8)) {
            fill_ids(yo, &self.train[s + 1..s + c + 1]);
        }
    }
    fn eval_x(&self) -> Decl {
        self.x()
    }
    fn eval_rows(&self) -> usize {
        self.served_windows()
    }
    fn write_eval_inputs(&self, out: &mut Vec<u8>) {
        put_ids(out, &self.held_out[..self.served_windows() * self.context]);
    }
    fn eval_out(&self) -> Vec<usize> {
        vec![self.context, crate::workload::CHARLM.vocab]
    }
    /// Mean cross-entropy in nats per character over every position of every window, as
    /// [`NextChar::held_out_loss`] computes it (there in f32 chunks, here in f64).
    fn score(&self, outputs: &[f32]) -> f64 {
        if !finite(outputs) {
            return f64::NAN;
        }
        let (c, v) = (self.context, crate::workload::CHARLM.vocab);
        let n = self.served_windows() * c;
        let mut total = 0.0f64;
        for (p, logits) in outputs.chunks_exact(v).take(n).enumerate() {
            // Window w starts at w × c, so position p's next character is at p + 1.
            let target = self.held_out[p + 1] as usize;
            let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
            let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
            total += max + sum.ln() - logits[target] as f64;
        }
        total / n.max(1) as f64
    }
}

impl Served for Reconstruct {
    fn x(&self) -> Decl {
        Decl { dtype: Dtype::F32, tail: vec![self.dim] }
    }
    fn y(&self) -> Option<Decl> {
        None
    }
    fn write_x(&self, idx: &[usize], x: &mut [u8]) {
        let d = self.dim;
        assert_eq!(x.len(), idx.len() * d * 4, "batch slice of the wrong size");
        for (&i, xo) in idx.iter().zip(x.chunks_exact_mut(d * 4)) {
            fill_f32(xo, &self.data.train[i * d..(i + 1) * d]);
        }
    }
    fn write_y(&self, _idx: &[usize], y: &mut [u8]) {
        assert!(y.is_empty(), "the autoencoder has no target");
    }
    fn x_row_bytes(&self, i: usize) -> Option<&[u8]> {
        let d = self.dim;
        le_bytes(&self.data.train[i * d..(i + 1) * d])
    }
    fn eval_x(&self) -> Decl {
        self.x()
    }
    fn eval_rows(&self) -> usize {
        self.data.test.len() / self.dim
    }
    fn write_eval_inputs(&self, out: &mut Vec<u8>) {
        put_f32(out, &self.data.test);
    }
    fn eval_out(&self) -> Vec<usize> {
        vec![self.dim]
    }
    /// Per-row mean squared reconstruction error as the anomaly score, then ROC AUC, as
    /// [`Reconstruct::scores`] and [`Task::evaluate`].
    fn score(&self, outputs: &[f32]) -> f64 {
        if !finite(outputs) {
            return f64::NAN;
        }
        let d = self.dim;
        let scores: Vec<f32> = outputs
            .chunks_exact(d)
            .zip(self.data.test.chunks_exact(d))
            .map(|(o, i)| o.iter().zip(i).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / d as f32)
            .collect();
        metrics::roc_auc(&scores, &self.data.test_anomalous)
    }
}

/// The reference architecture's layers, in order, as `train_load` describes them (from
/// `mlp.rs`, `autoencoder.rs`, `cnn.rs`, `charlm.rs`). Linear weights are (in, out).
pub fn layers(spec: &crate::WorkloadSpec) -> serde_json::Value {
    use crate::workload::Arch;
    use serde_json::json;
    let lin = |i: usize, o: usize| json!({"type": "linear", "in": i, "out": o, "init": "uniform(+-1/sqrt(in)) weight (in,out) and bias"});
    let mlp = |sizes: &[usize]| {
        let mut v = Vec::new();
        for (k, w) in sizes.windows(2).enumerate() {
            v.push(lin(w[0], w[1]));
            if k + 2 < sizes.len() {
                v.push(json!({"type": "relu"}));
            }
        }
        json!(v)
    };
    match spec.arch {
        Arch::DigitsMlp => mlp(&[64, 128, 10]),
        Arch::FmnistMlp => mlp(&[784, 128, 10]),
        Arch::MachineAe => mlp(&crate::autoencoder::SIZES),
        Arch::FmnistCnn => {
            let conv = |i: usize, o: usize| {
                json!({"type": "conv2d", "in": i, "out": o, "kernel": 3, "stride": 1, "padding": 1,
                "init": "uniform(+-1/sqrt(in*3*3)) weight (out,in,3,3) and bias"})
            };
            json!([{"type": "reshape", "shape": [1, 28, 28]}, conv(1, 16), {"type": "relu"}, {"type": "maxpool2"},
                conv(16, 32), {"type": "relu"}, {"type": "maxpool2"}, {"type": "flatten"}, lin(1568, 64),
                {"type": "relu"}, lin(64, 10)])
        }
        Arch::CharLm => {
            let c = crate::workload::CHARLM;
            json!([
                {"type": "embedding", "n": c.vocab, "d": c.d_model, "name": "tok", "init": "uniform(+-sqrt(3))"},
                {"type": "embedding", "n": c.context, "d": c.d_model, "name": "pos", "init": "uniform(+-sqrt(3))"},
                {"type": "transformer_block", "repeat": c.blocks, "heads": c.heads, "d": c.d_model, "mlp": 4 * c.d_model,
                 "causal": true, "norm": "pre (layer norm, eps 1e-5, weight 1, bias 0)",
                 "parts": ["ln1", "q", "k", "v", "o", "ln2", "fc1 (relu)", "fc2"]},
                {"type": "layer_norm", "d": c.d_model, "name": "ln_f"},
                lin(c.d_model, c.vocab),
            ])
        }
    }
}

/// The task's served view, or an error naming the task kind that has none.
pub fn served(task: &dyn Task) -> crate::Result<&dyn Served> {
    task.served().ok_or_else(|| {
        crate::ModelError::Unsupported("this training task cannot be served to an outside trainer".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ClassSet;
    use candle_core::Device;

    fn classify() -> Classify {
        let set = |n: usize| ClassSet {
            x: (0..n * 3).map(|v| v as f32 * 0.5).collect(),
            y: (0..n as u32).map(|i| i % 2).collect(),
            dim: 3,
            classes: 2,
        };
        Classify { train: set(5), test: set(4) }
    }

    fn f32s(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn a_served_batch_is_the_tasks_own_batch() {
        let t = classify();
        let idx = [4, 0, 4, 2];
        let (mut x, mut y) = (vec![0xAA; batch_len(&t.x(), 4)], vec![0xAA; batch_len(&t.y().unwrap(), 4)]);
        t.write_batch(&idx, &mut x, &mut y);
        let b = Task::batch(&t, &idx, &Device::Cpu).unwrap();
        assert_eq!(f32s(&x), b.x.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let ys: Vec<i64> = y.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        let want: Vec<i64> = b.y.to_vec1::<u32>().unwrap().into_iter().map(i64::from).collect();
        assert_eq!(ys, want);
        // The rows served straight from memory are the gathered rows.
        let direct: Vec<u8> = idx.iter().flat_map(|&i| t.x_row_bytes(i).unwrap().to_vec()).collect();
        assert_eq!(direct, x);
    }

    #[test]
    fn classify_scores_with_accuracy_and_nan_never_scores() {
        let t = classify();
        // Test labels 0,1,0,1: logits that pick 0,1,1,1 are 3/4 right.
        let out = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        assert_eq!(t.score(&out), 0.75);
        let mut bad = out;
        bad[5] = f32::NAN;
        assert!(t.score(&bad).is_nan());
        assert_eq!(t.eval_rows(), 4);
        let mut e = Vec::new();
        t.write_eval_inputs(&mut e);
        assert_eq!(f32s(&e), t.test.x);
    }

    #[test]
    fn next_char_loss_is_uniform_log_vocab_for_equal_logits() {
        let text: Vec<u32> = (0..200).map(|i| i % 7).collect();
        let t = NextChar { train: text.clone(), held_out: text, context: 4, eval_windows: 3 };
        let v = crate::workload::CHARLM.vocab;
        let out = vec![0.5f32; 3 * 4 * v];
        assert!((t.score(&out) - (v as f64).ln()).abs() < 1e-9);
        // All mass on the right next character: loss ~ 0.
        let mut sure = vec![-30f32; 3 * 4 * v];
        for p in 0..12 {
            sure[p * v + t.held_out[p + 1] as usize] = 30.0;
        }
        assert!(t.score(&sure) < 1e-6, "{}", t.score(&sure));
    }

    #[test]
    fn the_described_layers_hold_the_reference_models_parameters() {
        // Linear: in*out + out; conv: out*in*k*k + out; what the candle model builds.
        for spec in crate::WORKLOADS.iter().filter(|w| w.kind == crate::Kind::Train) {
            let layers = layers(spec);
            let count: usize = layers
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    let n = |k: &str| l[k].as_u64().unwrap_or(0) as usize;
                    match l["type"].as_str().unwrap() {
                        "linear" => n("in") * n("out") + n("out"),
                        "conv2d" => n("out") * n("in") * n("kernel") * n("kernel") + n("out"),
                        _ => 0,
                    }
                })
                .sum();
            let net = spec.build_net(0, &Device::Cpu).unwrap();
            if spec.arch != crate::workload::Arch::CharLm {
                assert_eq!(count, net.params().count(), "{}", spec.id);
            }
        }
    }
}
