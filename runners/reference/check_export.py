#!/usr/bin/env python3
"""Checks bundles written by `effbench export` against onnxruntime (CPU execution provider).

For each bundle directory given (one holding manifest.json, or a directory of them):
  1. the files match the sha256 in manifest.json;
  2. onnx.checker.check_model(full_check=True) accepts model.onnx (with shape inference), its
     opset, input and output agree with the manifest, and protobuf's own serialisation of the
     parsed model is byte for byte the file (effbench's hand-written encoder is canonical);
  3. onnxruntime runs the model on inputs.bin at the workload's batch size and at batch 1
     (and at every size given with --batch), and the outputs match reference_outputs.bin
     (candle's) to the manifest's f32 tolerance.

Relative error is the definition of effbench's `backend::external::check::compare` (Rust,
where the reasons are spelled out), the rule runners' answers are held to: for each query's
output row, |got - want| / max(|want|, 1e-2 * max|want| over that row). The floor keeps values
near zero, where f32 rounding of large cancelling terms leaves a few ulps of the row's
magnitude whoever computes them, from turning that into a huge ratio.

Prints one line per workload and batch size with the worst relative error; exits 1 if any
check fails, 2 on bad usage.
"""

import argparse
import hashlib
import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort

SCHEMA = "effbench.export/1"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def max_relative_error(got, want):
    """got, want: [queries, values per query]. Returns (worst error, flat index)."""
    got = got.astype(np.float64)
    want = want.astype(np.float64)
    if got.shape != want.shape:
        return float("inf"), 0
    want = want.reshape(want.shape[0], -1)
    got = got.reshape(want.shape)
    row_max = np.max(np.abs(want), axis=1, initial=0.0, keepdims=True)
    floor = np.maximum(1e-2 * row_max, np.finfo(np.float64).tiny)
    err = (np.abs(got - want) / np.maximum(np.abs(want), floor)).ravel()
    err = np.where(np.isnan(err), np.inf, err)
    i = int(np.argmax(err)) if err.size else 0
    return (float(err[i]) if err.size else 0.0), i


def run_batches(session, name, inputs, batch):
    outs = []
    for start in range(0, inputs.shape[0], batch):
        outs.append(session.run(None, {name: inputs[start:start + batch]})[0])
    return np.concatenate(outs, axis=0)


def check(bundle, extra_batches):
    """Returns a list of failure messages (empty: the bundle passed)."""
    failures = []
    m = json.loads((bundle / "manifest.json").read_text())
    if m.get("schema") != SCHEMA:
        return [f"{bundle}: manifest schema {m.get('schema')!r}, expected {SCHEMA!r}"]
    wid = m["workload"]
    files = [(m["model"]["file"], m["model"]["sha256"]), (m["input"]["file"], m["input"]["sha256"]),
             (m["output"]["file"], m["output"]["sha256"])]
    for f, want in files:
        got = sha256(bundle / f)
        if got != want:
            failures.append(f"{wid}: {f} has sha256 {got}, the manifest says {want}")
    if failures:
        return failures

    model_path = bundle / m["model"]["file"]
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    if model.SerializeToString() != model_path.read_bytes():
        failures.append(f"{wid}: model.onnx is not protobuf's canonical serialisation of itself")
    opsets = {o.domain: o.version for o in model.opset_import}
    if opsets.get("", opsets.get("ai.onnx")) != m["model"]["opset"]:
        failures.append(f"{wid}: opset_import {opsets} disagrees with the manifest's {m['model']['opset']}")
    for io, vi in (("input", model.graph.input), ("output", model.graph.output)):
        if len(vi) != 1 or vi[0].name != m[io]["name"]:
            failures.append(f"{wid}: graph {io}s {[v.name for v in vi]}, manifest {m[io]['name']!r}")
            continue
        dims = vi[0].type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if shape != m[io]["shape"]:
            failures.append(f"{wid}: graph {io} shape {shape}, manifest {m[io]['shape']}")
        if onnx.helper.tensor_dtype_to_np_dtype(vi[0].type.tensor_type.elem_type) != np.dtype(m[io]["dtype"]):
            failures.append(f"{wid}: graph {io} element type disagrees with the manifest's {m[io]['dtype']}")
    if failures:
        return failures

    inputs = np.fromfile(bundle / m["input"]["file"], dtype=np.dtype(m["input"]["dtype"]).newbyteorder("<"))
    inputs = inputs.reshape(m["input"]["file_shape"])
    want = np.fromfile(bundle / m["output"]["file"], dtype=np.dtype("<f4")).reshape(m["output"]["file_shape"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    tol = m["f32_tolerance"]
    for batch in sorted({m["batch_size"], 1, *extra_batches}, reverse=True):
        got = run_batches(session, m["input"]["name"], inputs, batch)
        if got.shape != want.shape:
            failures.append(f"{wid}: batch {batch}: outputs of shape {got.shape}, reference {want.shape}")
            continue
        err, i = max_relative_error(got, want)
        row, col = divmod(i, want.shape[1])
        verdict = "ok" if err <= tol else "FAIL"
        print(f"{wid:<26} batch {batch:>4}: max relative error {err:.3e} (query {row}, output {col}: "
              f"onnxruntime {got.ravel()[i]:.7g}, candle {want.ravel()[i]:.7g})  {verdict}", flush=True)
        if err > tol:
            failures.append(f"{wid}: batch {batch}: max relative error {err:.3e} > tolerance {tol:g}")
    return failures


def bundles_in(path):
    if (path / "manifest.json").exists():
        return [path]
    found = sorted(p.parent for p in path.glob("*/manifest.json"))
    if not found:
        raise SystemExit(f"check_export.py: no manifest.json in {path} or its subdirectories")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", type=pathlib.Path, help="a bundle directory, or a directory of bundles")
    ap.add_argument("--batch", type=int, action="append", default=[], help="also run at this batch size")
    args = ap.parse_args()
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}", flush=True)
    failures = []
    for p in args.paths:
        for bundle in bundles_in(p):
            try:
                failures += check(bundle, args.batch)
            except Exception as e:  # a model the checker or onnxruntime rejects is a failed check
                failures.append(f"{bundle}: {type(e).__name__}: {e}")
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
