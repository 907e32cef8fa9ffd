#!/usr/bin/env python3
"""onnxruntime's inference pass, for the peer comparison with effbench's (compare.sh).

For each bundle written by `effbench export` (model.onnx, inputs.bin, manifest.json), times
what the reference runner (runners/reference/runner.py) does per pass: every query through an
`InferenceSession` on the CPU execution provider at the workload's batch size (or --batch),
`intra_op_num_threads` = --threads and `inter_op_num_threads` = 1 as the runner sets them,
outputs returned as numpy arrays. The session is built and the inputs read before timing, as
effbench builds its model before the window. Prints one JSON line per bundle, with the same
fields as models/examples/peer_infer.rs: wall time per query (median, p10, p90 over passes),
CPU time of the process per query (time.process_time, all threads), and the worst relative
error of the answers against the bundle's reference outputs (candle's), so a wrong pass shows.

Usage: ort_infer.py BUNDLE [BUNDLE ...] --threads N [--batch B] [--min-seconds S]
"""
import argparse
import json
import pathlib
import time

import numpy as np
import onnxruntime as ort


def load(bundle, threads):
    m = json.loads((bundle / "manifest.json").read_text())
    x = np.fromfile(bundle / m["input"]["file"], dtype=np.dtype(m["input"]["dtype"]).newbyteorder("<"))
    x = x.reshape(m["input"]["file_shape"])
    want = np.fromfile(bundle / m["output"]["file"], dtype=np.dtype("<f4")).reshape(m["output"]["file_shape"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(bundle / m["model"]["file"]), opts, providers=["CPUExecutionProvider"])
    return m, x, want, session


def one_pass(session, name, x, batch):
    outs = [session.run(None, {name: x[s:s + batch]})[0] for s in range(0, x.shape[0], batch)]
    return np.concatenate(outs, axis=0)


def rel_error(got, want):
    """check_export.py's rule: per row, |got - want| / max(|want|, 1e-2 max|want| of the row)."""
    got, want = got.reshape(want.shape[0], -1).astype(np.float64), want.reshape(want.shape[0], -1).astype(np.float64)
    floor = np.maximum(1e-2 * np.max(np.abs(want), axis=1, keepdims=True), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), floor)))


def time_bundle(bundle, threads, batch, min_seconds):
    m, x, want, session = load(bundle, threads)
    batch = batch or m["batch_size"]
    name = m["input"]["name"]
    t = time.perf_counter()
    got = one_pass(session, name, x, batch)  # warm-up
    first = time.perf_counter() - t
    n = min(max(5, int(np.ceil(min_seconds / max(first, 1e-9)))), 10_000)
    times = []
    cpu0 = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        got = one_pass(session, name, x, batch)
        times.append(time.perf_counter() - t)
    cpu = time.process_time() - cpu0
    q = x.shape[0]
    times.sort()
    pick = lambda f: round(times[round((len(times) - 1) * f)] / q * 1e6, 1)  # noqa: E731
    return {"workload": m["workload"], "batch": batch, "threads": threads, "queries": q,
            "median_us": pick(0.5), "p10_us": pick(0.1), "p90_us": pick(0.9),
            "cpu_us": round(cpu / n / q * 1e6, 1), "passes": n, "max_rel_error": rel_error(got, want),
            "onnxruntime": ort.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+", type=pathlib.Path)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=0, help="default: the workload's batch size")
    ap.add_argument("--min-seconds", type=float, default=2.0)
    a = ap.parse_args()
    for b in a.bundles:
        print(json.dumps(time_bundle(b, a.threads, a.batch, a.min_seconds)), flush=True)


if __name__ == "__main__":
    main()
