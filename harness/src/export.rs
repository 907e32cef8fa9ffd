//! `effbench export`: an inference workload as a self-contained bundle a runner effbench
//! cannot link against can load: the model as ONNX (built by `effbench_models::onnx`), the
//! query inputs, candle's reference outputs and a manifest that says what each file holds.
//!
//! Bundle layout (one directory per workload, `DIR/<id>/`):
//!
//! - `model.onnx`: opset 13, input `input` [N, dim] (float32, or int64 character ids for the
//!   language model), output `output` [N, out], N free;
//! - `inputs.bin`: the query inputs, raw little-endian, row-major [queries, dim];
//! - `reference_outputs.bin`: candle's f32 outputs for them, little-endian, row-major
//!   [queries, out];
//! - `manifest.json`: schema `effbench.export/1` (the [`Manifest`] below), written last.
//!
//! Every file is written atomically, so a bundle directory holds old or new files, never half
//! of one; the manifest's sha256 of each file tells a reader whether the files belong together.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use effbench_models::data::DataConfig;
use effbench_models::infer::{InferSession, QueryValues};
use effbench_models::onnx::{self, OnnxModel};
use effbench_models::{Kind, WorkloadSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil::{write_atomic, write_json_atomic};

/// The manifest schema this version writes and reads.
pub const SCHEMA: &str = "effbench.export/1";
pub const MODEL_FILE: &str = "model.onnx";
pub const INPUTS_FILE: &str = "inputs.bin";
pub const OUTPUTS_FILE: &str = "reference_outputs.bin";
pub const MANIFEST_FILE: &str = "manifest.json";
/// The f32 tolerance an exported model's (or a runner's) outputs are held to: the maximum
/// relative error of [`crate::backend::external::check::compare`] (one definition for both).
pub const F32_TOLERANCE: f64 = crate::backend::external::check::F32_MAX_REL;

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub workload: String,
    pub effbench_version: String,
    pub model: ModelFile,
    /// The graph input and the file of query inputs.
    pub input: Tensor,
    /// The graph output and the file of reference outputs.
    pub output: Tensor,
    /// The workload's queries per batch.
    pub batch_size: usize,
    /// Rows in `inputs.bin` and `reference_outputs.bin`.
    pub queries: usize,
    /// The workload's quality computed from the reference outputs.
    pub reference_quality: Quality,
    /// The f32 tolerance outputs are held to (max relative error, see `backend::external::check::compare`).
    pub f32_tolerance: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub opset: i64,
    pub ir_version: i64,
    /// sha256 of the parameters (f32 little-endian, in the model's parameter order).
    pub weights_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// The name in the graph.
    pub name: String,
    /// numpy's name: "float32" or "int64".
    pub dtype: String,
    /// The shape in the graph: `null` is the free batch dimension.
    pub shape: Vec<Option<usize>>,
    pub file: String,
    /// The shape of the data in `file`: [queries, ...].
    pub file_shape: Vec<usize>,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub metric: String,
    pub value: f64,
    pub higher_is_better: bool,
    pub target: f64,
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The inference workload `id`, or a clear error naming the valid ones.
pub fn inference_spec(id: &str) -> anyhow::Result<&'static WorkloadSpec> {
    let spec = WorkloadSpec::get(id)?;
    if spec.kind != Kind::Infer {
        bail!("{id} is a training workload; only inference workloads can be exported: {}", inference_ids().join(", "));
    }
    Ok(spec)
}

pub fn inference_ids() -> Vec<&'static str> {
    effbench_models::WORKLOADS.iter().filter(|w| w.kind == Kind::Infer).map(|w| w.id).collect()
}

/// Export `spec`'s model with `session`'s weights and write the bundle into `dir` (created if
/// needed). Returns the manifest written.
pub fn write_bundle(spec: &WorkloadSpec, session: &InferSession, dir: &Path) -> anyhow::Result<Manifest> {
    let model = onnx::export(spec, session).with_context(|| format!("exporting {} to ONNX", spec.id))?;
    write_bundle_with(spec, session, &model, dir)
}

/// [`write_bundle`] with a model exported beforehand: the query inputs and the reference
/// outputs come from `session`, the graph from `model` (tests use this to check that a wrong
/// model is caught).
pub fn write_bundle_with(
    spec: &WorkloadSpec,
    session: &InferSession,
    model: &OnnxModel,
    dir: &Path,
) -> anyhow::Result<Manifest> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<(String, u64)> {
        let path = dir.join(name);
        write_atomic(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        Ok((sha256_hex(bytes), bytes.len() as u64))
    };
    let inputs = session.inputs();
    let queries = inputs.rows();
    let input_bytes: Vec<u8> = match &inputs.values {
        QueryValues::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        // candle takes the ids as u32, ONNX's Gather as int64
        QueryValues::U32(v) => v.iter().flat_map(|&x| i64::from(x).to_le_bytes()).collect(),
    };
    let input_dtype = match &inputs.values {
        QueryValues::F32(_) => "float32",
        QueryValues::U32(_) => "int64",
    };
    if input_dtype != model.input.dtype {
        bail!("{}: the query inputs are {input_dtype}, the ONNX graph takes {}", spec.id, model.input.dtype);
    }
    let (outputs, per_query) = session.outputs()?;
    if outputs.len() != queries * per_query || model.output.dims.last() != Some(&Some(per_query)) {
        bail!("{}: candle gives {per_query} values per query, the ONNX graph {:?}", spec.id, model.output.dims);
    }
    let output_bytes: Vec<u8> = outputs.iter().flat_map(|x| x.to_le_bytes()).collect();

    let (model_sha, model_len) = write(MODEL_FILE, &model.bytes)?;
    let (in_sha, in_len) = write(INPUTS_FILE, &input_bytes)?;
    let (out_sha, out_len) = write(OUTPUTS_FILE, &output_bytes)?;
    let manifest = Manifest {
        schema: SCHEMA.into(),
        workload: spec.id.into(),
        effbench_version: env!("CARGO_PKG_VERSION").into(),
        model: ModelFile {
            file: MODEL_FILE.into(),
            sha256: model_sha,
            bytes: model_len,
            opset: model.opset,
            ir_version: model.ir_version,
            weights_sha256: model.weights_sha256.clone(),
        },
        input: Tensor {
            name: model.input.name.clone(),
            dtype: model.input.dtype.into(),
            shape: model.input.dims.clone(),
            file: INPUTS_FILE.into(),
            file_shape: vec![queries, inputs.dim],
            sha256: in_sha,
            bytes: in_len,
        },
        output: Tensor {
            name: model.output.name.clone(),
            dtype: model.output.dtype.into(),
            shape: model.output.dims.clone(),
            file: OUTPUTS_FILE.into(),
            file_shape: vec![queries, per_query],
            sha256: out_sha,
            bytes: out_len,
        },
        batch_size: session.batch(),
        queries,
        reference_quality: Quality {
            metric: spec.quality_metric.into(),
            value: session.score(&outputs, per_query),
            higher_is_better: spec.higher_is_better,
            target: spec.quality_target,
        },
        f32_tolerance: F32_TOLERANCE,
    };
    let path = dir.join(MANIFEST_FILE);
    write_json_atomic(&path, &manifest).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(manifest)
}

impl Manifest {
    /// Read `dir/manifest.json`, checking its schema.
    pub fn load(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        match v.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => bail!("{} has schema {other:?}; this effbench reads {SCHEMA:?}", path.display()),
            None => bail!("{} has no \"schema\" field (expected {SCHEMA:?})", path.display()),
        }
        serde_json::from_value(v).with_context(|| format!("{} is not a valid {SCHEMA} manifest", path.display()))
    }
}

/// One exported bundle and how long it took.
#[derive(Clone, Debug)]
pub struct Exported {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Loading the weights and the queries.
    pub load_seconds: f64,
    /// Building and serialising the ONNX graph.
    pub export_seconds: f64,
    /// Everything: loading, export, candle's reference outputs, writing the files.
    pub total_seconds: f64,
}

/// Export every workload of `specs` (inference workloads; anything else is refused before any
/// file is written) into `out/<id>/`, on the CPU, with the weights in `weights_dir`.
pub fn export_bundles(
    specs: &[&'static WorkloadSpec],
    out: &Path,
    data: &DataConfig,
    weights_dir: &Path,
    progress: &mut dyn FnMut(&Exported),
) -> anyhow::Result<Vec<Exported>> {
    for spec in specs {
        inference_spec(spec.id)?;
    }
    let dev = candle_core::Device::Cpu;
    let most = specs.iter().map(|s| s.threads).max().unwrap_or(1);
    crate::threads::size_pool(most).map_err(anyhow::Error::msg)?;
    let mut done = Vec::new();
    for &spec in specs {
        crate::threads::set(spec.threads);
        let t0 = Instant::now();
        let session = InferSession::new(spec, data, weights_dir, &dev)?;
        let t1 = Instant::now();
        let model = onnx::export(spec, &session).with_context(|| format!("exporting {} to ONNX", spec.id))?;
        let t2 = Instant::now();
        let dir = out.join(spec.id);
        let manifest = write_bundle_with(spec, &session, &model, &dir)?;
        let e = Exported {
            dir,
            manifest,
            load_seconds: (t1 - t0).as_secs_f64(),
            export_seconds: (t2 - t1).as_secs_f64(),
            total_seconds: t0.elapsed().as_secs_f64(),
        };
        progress(&e);
        done.push(e);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_and_unknown_workloads_are_refused_by_name() {
        let e = inference_spec("fmnist-mlp-train").unwrap_err().to_string();
        assert!(e.contains("training workload") && e.contains("fmnist-mlp-infer"), "{e}");
        let e = inference_spec("nope").unwrap_err().to_string();
        assert!(e.contains("unknown workload"), "{e}");
        assert!(inference_spec("charlm-austen-infer-b250").is_ok());
        assert_eq!(inference_ids().len(), 8);
    }

    #[test]
    fn manifest_load_rejects_other_schemas() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), r#"{"schema": "effbench.export/9"}"#).unwrap();
        let e = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("effbench.export/9") && e.contains(SCHEMA), "{e}");
        std::fs::write(dir.path().join(MANIFEST_FILE), "{}").unwrap();
        assert!(Manifest::load(dir.path()).unwrap_err().to_string().contains("no \"schema\""));
    }
}
