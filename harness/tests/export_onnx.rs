//! `effbench export`: every inference workload's ONNX model, run in onnxruntime (CPU execution
//! provider) through `runners/reference/check_export.py`, must reproduce candle's outputs
//! (f32, max relative error 1e-4 as `effbench::backend::external::check::compare` defines it), at the
//! workload's batch size and at batch 1; and a wrong model must fail that check.
//!
//! Needs the reference runner's Python environment: `bash runners/reference/setup.sh` (CI runs
//! it before the tests). Without it these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use effbench::export::{self, Manifest};
use effbench_models::data::DataConfig;
use effbench_models::infer::{default_weights_dir, InferSession};
use effbench_models::WorkloadSpec;
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn python() -> PathBuf {
    let p = repo().join("runners/reference/.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash runners/reference/setup.sh` once (it installs onnxruntime and onnx for these tests)",
        p.display()
    );
    p
}

fn check(paths: &[&Path]) -> Output {
    let mut c = Command::new(python());
    c.arg(repo().join("runners/reference/check_export.py")).args(paths);
    c.output().unwrap()
}

fn effbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_effbench")).args(args).env_remove("RAYON_NUM_THREADS").output().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("effbench-export-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_inference_workload_exports_and_matches_onnxruntime() {
    let py = python(); // fail first, and clearly, without the environment
    let out = tmp("all");
    let o = effbench(&["export", "--suite", "full", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ids = export::inference_ids();
    assert_eq!(ids.len(), 8);
    for id in &ids {
        let dir = out.join(id);
        let m = Manifest::load(&dir).unwrap();
        assert_eq!(&m.workload, id);
        assert_eq!(m.model.opset, 13);
        assert_eq!(m.queries, 1000);
        assert_eq!(m.batch_size, WorkloadSpec::get(id).unwrap().batch.max(1));
        for (file, sha, bytes) in [
            (&m.model.file, &m.model.sha256, m.model.bytes),
            (&m.input.file, &m.input.sha256, m.input.bytes),
            (&m.output.file, &m.output.sha256, m.output.bytes),
        ] {
            let b = std::fs::read(dir.join(file)).unwrap();
            assert_eq!(b.len() as u64, bytes, "{id}/{file}");
            assert_eq!(&format!("{:x}", Sha256::digest(&b)), sha, "{id}/{file}");
        }
        let width = if m.input.dtype == "int64" { 8 } else { 4 };
        assert_eq!(m.input.bytes as usize, m.input.file_shape.iter().product::<usize>() * width, "{id}");
        assert_eq!(m.input.shape[0], None, "{id}: the batch dimension must be free");
        assert!(m.reference_quality.value.is_finite());
    }
    let lm = Manifest::load(&out.join("charlm-austen-infer")).unwrap();
    assert_eq!((lm.input.dtype.as_str(), lm.output.shape.clone()), ("int64", vec![None, Some(75)]));

    // the same workload exported again gives the same bytes
    let again = tmp("again");
    let o = effbench(&["export", "--workload", "fmnist-cnn-infer", "--out", again.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for f in [export::MODEL_FILE, export::INPUTS_FILE, export::OUTPUTS_FILE, export::MANIFEST_FILE] {
        let a = std::fs::read(out.join("fmnist-cnn-infer").join(f)).unwrap();
        assert!(a == std::fs::read(again.join("fmnist-cnn-infer").join(f)).unwrap(), "{f} differs between exports");
    }

    assert!(py.exists());
    let o = check(&[&out]);
    let stdout = text(&o.stdout);
    println!("{stdout}");
    assert!(o.status.success(), "onnxruntime disagrees with candle:\n{stdout}\n{}", text(&o.stderr));
    for id in &ids {
        let lines: Vec<&str> = stdout.lines().filter(|l| l.split_whitespace().next() == Some(id)).collect();
        let batches = if id.ends_with("-b250") { 2 } else { 1 };
        assert_eq!(lines.len(), batches, "{id}: one line per batch size:\n{stdout}");
        assert!(lines.iter().all(|l| l.contains("max relative error") && l.ends_with("ok")), "{stdout}");
        assert!(lines.iter().any(|l| l.contains("batch    1:")), "{id} must run at batch 1:\n{stdout}");
    }
}

/// A model with one wrong weight, or one matrix transposed, must fail the comparison with
/// candle's reference outputs (which come from the right weights).
#[test]
fn a_wrong_export_fails_the_check() {
    python();
    let data = DataConfig::shipped_only();
    let dev = candle_core::Device::Cpu;
    let root = tmp("wrong");
    let mut dirs = Vec::new();
    for (id, param) in [("fmnist-mlp-infer-b250", "fc1.weight"), ("charlm-austen-infer-b250", "block0.q.weight")] {
        let spec = WorkloadSpec::get(id).unwrap();
        let session = InferSession::new(spec, &data, &default_weights_dir(), &dev).unwrap();
        let var = session.net().params().vars.iter().find(|(n, _)| n == param).unwrap().1.clone();
        let good = var.as_tensor().copy().unwrap();
        let bad = if param.starts_with("block0.q") {
            good.t().unwrap().contiguous().unwrap() // a square matrix, transposed
        } else {
            let mut v = good.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v[0] += 0.5; // one weight of the output layer
            candle_core::Tensor::from_vec(v, good.dims(), &dev).unwrap()
        };
        var.set(&bad).unwrap();
        let model = effbench_models::onnx::export(spec, &session).unwrap();
        var.set(&good).unwrap();
        let dir = root.join(id);
        export::write_bundle_with(spec, &session, &model, &dir).unwrap();
        // the right model from the same session passes, so the failure below is the weight's
        let ok_dir = root.join(format!("{id}-right"));
        export::write_bundle(spec, &session, &ok_dir).unwrap();
        assert!(check(&[&ok_dir]).status.success(), "{id}: the right model should pass");
        dirs.push((id, dir));
    }
    for (id, dir) in &dirs {
        let o = check(&[dir]);
        let stderr = text(&o.stderr);
        println!("{}", text(&o.stdout));
        assert_eq!(o.status.code(), Some(1), "{id}: a wrong model must fail:\n{}\n{stderr}", text(&o.stdout));
        assert!(stderr.contains(id) && stderr.contains("max relative error"), "{stderr}");
    }
}

#[test]
fn training_and_unknown_workloads_are_usage_errors() {
    let out = tmp("refused");
    let o = effbench(&["export", "--workload", "fmnist-mlp-train", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("training workload") && e.contains("fmnist-mlp-infer"), "{e}");
    let o =
        effbench(&["export", "--workload", "fmnist-mlp-infer", "--workload", "nope", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown workload"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing is written when a workload is refused");
    let o = effbench(&["export", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "no workload named: usage error");
}
