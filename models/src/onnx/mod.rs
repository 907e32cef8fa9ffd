//! ONNX export of the inference workloads' models, built in Rust (no Python, no protoc), so a
//! runner that effbench cannot link against (an NPU SDK that compiles ONNX graphs, the
//! reference runner on onnxruntime) computes exactly the function effbench checks against.
//!
//! The exported graph maps the workload's query inputs to the answers `InferSession::outputs`
//! gives, batch by batch: for the language model the graph already keeps only the logits after
//! the last character of each context.
//!
//! Layout: `proto` (a hand-written protobuf encoder for the ONNX messages used), `graph` (a
//! node-by-node builder with one helper per layer), and here one exporter per architecture,
//! each mirroring its model's `forward`.
//!
//! **Opset 13.** Every op used (Gemm, MatMul, Conv, MaxPool, Gather, Softmax, ReduceMean with
//! `axes` as an attribute, ...) is in opset 13, the set the widest range of runtimes and NPU
//! compilers accept. Layer normalisation is therefore decomposed (ReduceMean, Sub, Mul, Sqrt,
//! Div, ...) instead of using `LayerNormalization`, which needs opset 17; the decomposition is
//! op for op what candle's `layer_norm_slow` computes, and compilers that fuse layer norm
//! recognise this pattern (it is what PyTorch exported before opset 17).

mod graph;
pub mod proto;

use graph::Builder;
use proto::{Attribute, DataType, Dim, Encode, Entry, Model, OpsetId, ValueInfo};

use crate::infer::InferSession;
use crate::workload::{Arch, Kind, WorkloadSpec, CHARLM};
use crate::{ModelError, Result};

/// The ONNX operator set the graphs use (see the module documentation).
pub const OPSET: i64 = 13;
/// The IR version that goes with opset 13 (ONNX 1.8).
pub const IR_VERSION: i64 = 7;
/// The graph's input and output names, the same for every workload.
pub const INPUT_NAME: &str = "input";
pub const OUTPUT_NAME: &str = "output";
/// The name of the free batch dimension.
pub const BATCH_DIM: &str = "N";
/// `layers::LayerNorm`'s epsilon.
const LN_EPS: f32 = 1e-5;

/// One graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoSpec {
    pub name: String,
    /// numpy-style element type name: "float32" or "int64".
    pub dtype: &'static str,
    /// `None` is the batch dimension, free in the graph.
    pub dims: Vec<Option<usize>>,
}

/// A serialised ModelProto and what it takes and gives.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    pub bytes: Vec<u8>,
    pub opset: i64,
    pub input: IoSpec,
    pub output: IoSpec,
    pub ir_version: i64,
    /// sha256 of the model's parameters (f32 little-endian, concatenated in the model's
    /// parameter order): identifies the weights independently of their file format.
    pub weights_sha256: String,
}

/// The ONNX model of an inference workload, with the weights of `session`.
pub fn export(spec: &WorkloadSpec, session: &InferSession) -> Result<OnnxModel> {
    if spec.kind != Kind::Infer {
        return Err(ModelError::Unsupported(format!(
            "{} is not an inference workload; only inference workloads are exported to ONNX",
            spec.id
        )));
    }
    let dim = session.inputs().dim;
    let mut b = Builder::new(session.net().params(), spec.id);
    let (in_type, out_dim) = match spec.arch {
        Arch::FmnistMlp | Arch::MachineAe | Arch::DigitsMlp => (DataType::Float, mlp(&mut b, INPUT_NAME)?),
        Arch::FmnistCnn => (DataType::Float, cnn(&mut b, INPUT_NAME, dim)?),
        Arch::CharLm => (DataType::Int64, charlm(&mut b, INPUT_NAME, dim)?),
    };
    b.rename_last_output(OUTPUT_NAME)?;
    let weights_sha256 = b.weights_sha256()?;
    let io = |name: &str, ty: DataType, d: usize| ValueInfo {
        name: name.into(),
        elem_type: ty,
        dims: vec![Dim::Param(BATCH_DIM.into()), Dim::Value(d as i64)],
    };
    let mut graph = b.graph;
    graph.inputs.push(io(INPUT_NAME, in_type, dim));
    graph.outputs.push(io(OUTPUT_NAME, DataType::Float, out_dim));
    let version = env!("CARGO_PKG_VERSION");
    let model = Model {
        ir_version: IR_VERSION,
        producer_name: "effbench".into(),
        producer_version: version.into(),
        domain: "effbench".into(),
        model_version: 1,
        doc_string: format!(
            "effbench {version} export of workload {} ({}); weights sha256 (f32 little-endian, parameter order): \
             {weights_sha256}",
            spec.id, spec.model
        ),
        graph,
        opset_import: vec![OpsetId { domain: String::new(), version: OPSET }],
        metadata: vec![
            Entry { key: "effbench.workload".into(), value: spec.id.into() },
            Entry { key: "effbench.batch".into(), value: spec.batch.max(1).to_string() },
            Entry { key: "effbench.weights_sha256".into(), value: weights_sha256.clone() },
        ],
    };
    let spec_of =
        |name: &str, ty: DataType, d: usize| IoSpec { name: name.into(), dtype: ty.numpy(), dims: vec![None, Some(d)] };
    Ok(OnnxModel {
        bytes: model.to_bytes(),
        opset: OPSET,
        input: spec_of(INPUT_NAME, in_type, dim),
        output: spec_of(OUTPUT_NAME, DataType::Float, out_dim),
        ir_version: IR_VERSION,
        weights_sha256,
    })
}

/// `mlp::Mlp` (and the autoencoder built on it): Linear layers `fc0`, `fc1`, ... with ReLU
/// between them. Returns the output width.
fn mlp(b: &mut Builder, input: &str) -> Result<usize> {
    let mut layers = 0;
    while b.dims(&format!("fc{layers}.weight")).is_ok() {
        layers += 1;
    }
    if layers == 0 {
        return Err(ModelError::Unsupported("ONNX export: an MLP without layers".into()));
    }
    let mut h = input.to_string();
    for i in 0..layers {
        h = b.linear(&h, &format!("fc{i}"), 2)?;
        if i + 1 < layers {
            h = b.relu(&h);
        }
    }
    Ok(b.dims(&format!("fc{}.weight", layers - 1))?[1])
}

/// `cnn::Cnn`: the pixels as one channel, two (3x3 "same" conv + ReLU + 2x2 max pool), then
/// flatten (channel-major, as candle's `flatten_from(1)` on NCHW) and FC-ReLU-FC. Pooling is
/// the standard MaxPool: candle's model pools with reshape + max only for its backward pass;
/// the forward is the same.
fn cnn(b: &mut Builder, input: &str, dim: usize) -> Result<usize> {
    let side = (dim as f64).sqrt().round() as usize;
    if side * side != dim || !side.is_multiple_of(4) {
        return Err(ModelError::Unsupported(format!(
            "ONNX export: the CNN needs square images of a side divisible by 4, got {dim} pixels"
        )));
    }
    let image = b.const_i64("image_shape", &[4], &[-1, 1, side as i64, side as i64]);
    let mut h = b.op("Reshape", &[input, &image], vec![]);
    for conv in ["conv1", "conv2"] {
        let k = b.dims(&format!("{conv}.weight"))?[2];
        let w = b.param(&format!("{conv}.weight"))?;
        let bias = b.param(&format!("{conv}.bias"))?;
        let p = (k / 2) as i64;
        let attrs = vec![
            Attribute::ints("kernel_shape", &[k as i64, k as i64]),
            Attribute::ints("pads", &[p, p, p, p]),
            Attribute::ints("strides", &[1, 1]),
            Attribute::ints("dilations", &[1, 1]),
            Attribute::int("group", 1),
        ];
        h = b.op("Conv", &[&h, &w, &bias], attrs);
        h = b.relu(&h);
        h = b.op("MaxPool", &[&h], vec![Attribute::ints("kernel_shape", &[2, 2]), Attribute::ints("strides", &[2, 2])]);
    }
    h = b.op("Flatten", &[&h], vec![Attribute::int("axis", 1)]);
    h = b.linear(&h, "fc1", 2)?;
    h = b.relu(&h);
    b.linear(&h, "fc2", 2)?;
    Ok(b.dims("fc2.weight")?[1])
}

/// `charlm::CharLm`: token + position embeddings, pre-LN blocks with causal multi-head
/// attention and a ReLU MLP, final LayerNorm and head. Only the logits after the last
/// character are returned: the final LayerNorm and the head work position by position, so the
/// last position is picked before them (same values, 1/64 of the work).
fn charlm(b: &mut Builder, input: &str, context: usize) -> Result<usize> {
    let cfg = CHARLM;
    let (t, d, heads) = (context, cfg.d_model, cfg.heads);
    let dh = d / heads;
    if b.dims("pos.weight")? != [t, d] || b.dims("tok.weight")? != [cfg.vocab, d] {
        return Err(ModelError::Unsupported(format!(
            "ONNX export: the language model's embeddings do not match context {t}, d_model {d}"
        )));
    }
    let tok = b.param("tok.weight")?;
    let pos = b.param("pos.weight")?;
    // (t, t): 0 on and below the diagonal, -1e9 above, as in charlm.rs
    let mask: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { -1e9 } else { 0.0 }).collect();
    let mask = b.const_f32("causal_mask", &[t, t], &mask);
    let scale = b.const_f32("attention_scale", &[], &[(1.0 / (dh as f64).sqrt()) as f32]);
    let split_heads = b.const_i64("split_heads_shape", &[4], &[0, 0, heads as i64, dh as i64]);
    let merge_heads = b.const_i64("merge_heads_shape", &[3], &[0, 0, d as i64]);
    let last = b.const_i64("last_position", &[], &[t as i64 - 1]);

    let emb = b.op("Gather", &[&tok, input], vec![Attribute::int("axis", 0)]);
    let mut h = b.op("Add", &[&emb, &pos], vec![]);
    for i in 0..cfg.blocks {
        let p = format!("block{i}");
        let x = b.layer_norm(&h, &format!("{p}.ln1"), LN_EPS)?;
        let mut qkv = Vec::new();
        for (name, perm) in [("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])] {
            let y = b.linear(&x, &format!("{p}.{name}"), 3)?;
            let y = b.op("Reshape", &[&y, &split_heads], vec![]);
            qkv.push(b.op("Transpose", &[&y], vec![Attribute::ints("perm", &perm)]));
        }
        // (N, heads, t, dh) x (N, heads, dh, t): k is transposed by its permutation above
        let scores = b.op("MatMul", &[&qkv[0], &qkv[1]], vec![]);
        let scores = b.op("Mul", &[&scores, &scale], vec![]);
        let scores = b.op("Add", &[&scores, &mask], vec![]);
        let att = b.op("Softmax", &[&scores], vec![Attribute::int("axis", -1)]);
        let y = b.op("MatMul", &[&att, &qkv[2]], vec![]);
        let y = b.op("Transpose", &[&y], vec![Attribute::ints("perm", &[0, 2, 1, 3])]);
        let y = b.op("Reshape", &[&y, &merge_heads], vec![]);
        let y = b.linear(&y, &format!("{p}.o"), 3)?;
        h = b.op("Add", &[&h, &y], vec![]);
        let m = b.layer_norm(&h, &format!("{p}.ln2"), LN_EPS)?;
        let m = b.linear(&m, &format!("{p}.fc1"), 3)?;
        let m = b.relu(&m);
        let m = b.linear(&m, &format!("{p}.fc2"), 3)?;
        h = b.op("Add", &[&h, &m], vec![]);
    }
    let h = b.op("Gather", &[&h, &last], vec![Attribute::int("axis", 1)]);
    let h = b.layer_norm(&h, "ln_f", LN_EPS)?;
    b.linear(&h, "head", 2)?;
    Ok(b.dims("head.weight")?[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataConfig;
    use crate::infer::default_weights_dir;
    use crate::WORKLOADS;

    #[test]
    fn every_inference_workload_exports_with_its_inputs_outputs_and_weights() {
        let dev = candle_core::Device::Cpu;
        let data = DataConfig::shipped_only();
        let mut seen = 0;
        for spec in WORKLOADS.iter().filter(|w| w.kind == Kind::Infer) {
            let s = InferSession::new(spec, &data, &default_weights_dir(), &dev).unwrap();
            let m = export(spec, &s).unwrap();
            let (dtype, out) = match spec.arch {
                Arch::CharLm => ("int64", CHARLM.vocab),
                Arch::MachineAe => ("float32", crate::autoencoder::INPUT),
                _ => ("float32", 10),
            };
            assert_eq!(m.input, IoSpec { name: "input".into(), dtype, dims: vec![None, Some(s.inputs().dim)] });
            assert_eq!(m.output, IoSpec { name: "output".into(), dtype: "float32", dims: vec![None, Some(out)] });
            assert_eq!((m.opset, m.ir_version), (13, 7));
            // every parameter is in the file as raw f32
            let params = 4 * s.net().params().count();
            assert!(m.bytes.len() > params && m.bytes.len() < params + 40_000, "{}: {} bytes", spec.id, m.bytes.len());
            assert_eq!(m.bytes, export(spec, &s).unwrap().bytes, "{}: export is deterministic", spec.id);
            let doc = String::from_utf8_lossy(&m.bytes);
            assert!(doc.contains(spec.id) && doc.contains(&m.weights_sha256), "{}", spec.id);
            seen += 1;
        }
        assert_eq!(seen, 8);
    }
}
