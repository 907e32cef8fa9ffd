//! ONNX export of the inference workloads' models, built in Rust (no Python, no protoc), so a
//! runner that effbench cannot link against (an NPU SDK that compiles ONNX graphs, the
//! reference runner on onnxruntime) computes exactly the function effbench checks against.
//!
//! The exported graph maps the workload's query inputs to the answers `InferSession::outputs`
//! gives, batch by batch: for the language model the graph already keeps only the logits after
//! the last character of each context.

use crate::infer::InferSession;
use crate::workload::WorkloadSpec;
use crate::{ModelError, Result};

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
}

/// The ONNX model of an inference workload, with the weights of `session`.
pub fn export(spec: &WorkloadSpec, session: &InferSession) -> Result<OnnxModel> {
    let _ = session;
    Err(ModelError::Unsupported(format!("ONNX export of {} is not implemented yet", spec.id)))
}
