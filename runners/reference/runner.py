#!/usr/bin/env python3
"""effbench's reference runner: Runner Protocol v1 on onnxruntime's CPU execution provider.

The conformance example (docs/runner-protocol.md): CI runs effbench's inference workloads
through it and effbench checks every answer. The protocol loop is the template's
(runners/template/runner.py); this file only supplies the device: an onnxruntime session.
Its `busy_s` is the time spent inside `InferenceSession.run`; bytes in and out are the query
inputs handed to the session and the outputs it returned (there is no device memory: host
to "device" is the copy into onnxruntime). Set up with `bash runners/reference/setup.sh`.
"""

import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "template"))
import runner as template  # noqa: E402  (the protocol loop)

NP = {"float32": np.float32, "int64": np.int64}


class OrtDevice(template.Device):
    runner = "effbench-reference onnxruntime-%s" % ort.__version__
    vendor = "ONNX Runtime (reference)"
    device = {"name": "CPUExecutionProvider", "domain": "cpu"}
    driver = "onnxruntime %s" % ort.__version__
    precisions = ["f32"]

    def load(self, model, input_decl, output_decl, precision, batch, threads=None):
        if model["format"] != "onnx":
            raise ValueError("the reference runner takes ONNX models, not %r" % model["format"])
        if precision != "f32":
            raise ValueError("the reference runner computes in f32 only, not %s" % precision)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model["path"], sess_options=opts, providers=["CPUExecutionProvider"])
        providers = self.session.get_providers()
        if providers[:1] != ["CPUExecutionProvider"]:
            raise RuntimeError("onnxruntime did not use the CPU execution provider: %s" % providers)
        self.in_name = input_decl["name"]
        self.out_name = output_decl["name"]
        self.in_dtype = NP[input_decl["dtype"]]
        self.in_tail = [d for d in input_decl["shape"][1:]]
        self.out_row_bytes = 4 * int(np.prod(output_decl["shape"][1:]))
        return "f32"

    def set_samples(self, raw, shape, dtype):
        self.samples = np.frombuffer(raw, dtype=NP[dtype]).reshape(shape)

    def unload(self):
        self.session = None
        self.samples = None


class OrtRunner(template.Runner):
    """The template's loop, with the query rows kept in one numpy array (no per-query copies)."""

    def load(self, msg):
        precision = self.device.load(msg["model"], msg["input"], msg["output"], msg["precision"], msg["batch"],
                                     msg.get("threads"))
        return {"precision": precision}

    def load_samples(self, msg):
        reply = template.Runner.load_samples(self, msg)
        t = msg["input"]
        self.device.set_samples(self.samples, t["shape"], t["dtype"])
        return reply

    def run_batches(self, msg):
        # The loop is kept lean: at batch 1 its own cost is counted as protocol overhead
        # (outside busy_s), next to a session.run of ~20 us.
        start, end, batch = msg["start"], msg["start"] + msg["rows"], msg["batch"]
        dev = self.device
        run, names, feed, samples = dev.session.run, [dev.out_name], dev.in_name, dev.samples
        clock = time.perf_counter
        outs = []
        append = outs.append
        busy = 0.0
        for s in range(start, end, batch):
            x = samples[s:min(s + batch, end)]
            t0 = clock()
            y = run(names, {feed: x})
            busy += clock() - t0
            append(y[0])
        self.busy_s += busy
        self.h2d_bytes += msg["rows"] * self.row_bytes
        self.d2h_bytes += sum(y.nbytes for y in outs)
        return outs

    def issue(self, msg):
        outs = self.run_batches(msg)
        y = np.concatenate(outs) if len(outs) > 1 else outs[0]
        y = np.ascontiguousarray(y, dtype="<f4").reshape(msg["rows"], -1)
        with open(msg["output"], "wb") as f:
            f.write(y.data)
        return {"output": {"path": msg["output"], "dtype": "float32", "shape": list(y.shape)}}


if __name__ == "__main__":
    template.serve(OrtRunner(OrtDevice()))
