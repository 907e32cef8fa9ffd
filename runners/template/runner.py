#!/usr/bin/env python3
"""A minimal Runner Protocol v1 runner for effbench, to adapt to a device in an afternoon.

effbench starts this program (named in a runner TOML, see runner.toml next to it) and talks
to it with one JSON object per line on stdin/stdout; docs/runner-protocol.md is the full text.
Everything protocol-related is done here, with the Python standard library only. What you
replace is the class `Device` at the top: `load` (compile the ONNX model for your device) and
`compute` (run one batch). Keep stdout for protocol messages: log to stderr.

As shipped, `Device` understands only the test format `effbench-reference-outputs` (effbench's
own answers, handed over by effbench's test suite), so effbench's tests run this very file as a
protocol-conformant runner without any inference library. Given a real ONNX model it says
that `compute` has not been written yet.
"""

import json
import os
import sys
import time

PROTOCOL = 1
# Element sizes of the dtypes effbench uses in files (raw little-endian, row-major).
ITEMSIZE = {"float32": 4, "int64": 8}


class Device:
    """Replace this class with calls into your SDK."""

    # What `hello` reports.
    runner = "effbench-template 1.0"
    vendor = "example"
    device = {"name": "host CPU (template runner)", "domain": "cpu-runner:0"}
    driver = None
    precisions = ["f32"]

    def load(self, model, input_decl, output_decl, precision, batch):
        """Prepare the model; return the precision you will compute in ("f32", "f16", "bf16"
        or "int8": a lower one is judged by the workload's quality, see the protocol text).

        model: {"path": ".../model.onnx", "format": "onnx", "opset": 17}
        input_decl / output_decl: {"name": "input", "dtype": "float32", "shape": [null, 784]}
        """
        self.out_row_bytes = 4
        for d in output_decl["shape"][1:]:
            self.out_row_bytes *= d
        if model["format"] == "effbench-reference-outputs":
            with open(model["path"], "rb") as f:
                self.answers = f.read()
            return "f32"
        raise NotImplementedError(
            "runners/template/runner.py: write Device.load and Device.compute for your device "
            "(this template only answers effbench's test format)"
        )

    def compute(self, inputs, start, count):
        """Run one batch: `inputs` holds `count` rows (raw bytes in the input dtype), which are
        samples start..start+count. Return the outputs as raw float32 little-endian bytes,
        `count` rows. The time spent here is what `busy_s` reports."""
        return self.answers[start * self.out_row_bytes:(start + count) * self.out_row_bytes]

    def unload(self):
        self.answers = b""


class Runner:
    def __init__(self, device):
        self.device = device
        self.samples = b""
        self.row_bytes = 0
        self.busy_s = 0.0
        self.h2d_bytes = 0
        self.d2h_bytes = 0

    # Each handler returns the reply's fields (without v, re, ok) or raises.
    def hello(self, msg):
        if PROTOCOL not in msg.get("protocol", []):
            raise ValueError("this runner speaks protocol %d only" % PROTOCOL)
        d = self.device
        return {
            "protocol": PROTOCOL,
            "runner": d.runner,
            "vendor": d.vendor,
            "device": d.device,
            "driver": d.driver,
            "precisions": d.precisions,
            "telemetry": ["busy_s", "h2d_bytes", "d2h_bytes"],
        }

    def load(self, msg):
        precision = self.device.load(msg["model"], msg["input"], msg["output"], msg["precision"], msg["batch"])
        return {"precision": precision}

    def load_samples(self, msg):
        t = msg["input"]
        with open(t["path"], "rb") as f:
            self.samples = f.read()
        self.row_bytes = ITEMSIZE[t["dtype"]]
        for d in t["shape"][1:]:
            self.row_bytes *= d
        if len(self.samples) != self.row_bytes * t["shape"][0]:
            raise ValueError("%s: size does not match shape %s" % (t["path"], t["shape"]))
        return {}

    def run_batches(self, msg):
        """Samples msg.start .. msg.start + msg.rows in batches of msg.batch rows."""
        start, end, batch = msg["start"], msg["start"] + msg["rows"], msg["batch"]
        outs = []
        for s in range(start, end, batch):
            n = min(batch, end - s)
            rows = self.samples[s * self.row_bytes:(s + n) * self.row_bytes]
            t0 = time.perf_counter()
            out = self.device.compute(rows, s, n)
            self.busy_s += time.perf_counter() - t0
            self.h2d_bytes += len(rows)
            self.d2h_bytes += len(out)
            outs.append(out)
        return outs

    def warmup(self, msg):
        self.run_batches(msg)
        return {}

    def issue(self, msg):
        # Every row's output, in sample order, into the one file effbench named.
        outs = self.run_batches(msg)
        with open(msg["output"], "wb") as f:
            f.write(b"".join(outs))
        per_row = self.device.out_row_bytes // 4
        return {"output": {"path": msg["output"], "dtype": "float32", "shape": [msg["rows"], per_row]}}

    def flush(self, msg):
        return {}  # this runner works synchronously: nothing is ever in flight

    def mark(self, msg):
        # Acknowledge only once in-flight work has drained (nothing here) and say when.
        return {"t_mono_ns": time.monotonic_ns()}

    def stats(self, msg):
        return {"busy_s": self.busy_s, "h2d_bytes": self.h2d_bytes, "d2h_bytes": self.d2h_bytes, "power": []}

    def unload(self, msg):
        self.device.unload()
        self.samples = b""
        return {}

    def shutdown(self, msg):
        return {}


def serve(runner, stdin=sys.stdin, stdout=sys.stdout):
    for line in stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        op = msg.get("op")
        try:
            handler = getattr(runner, op, None) if isinstance(op, str) and not op.startswith("_") else None
            if handler is None or op == "run_batches":
                raise ValueError("unknown op %r" % op)
            reply = handler(msg)
            reply.update({"v": PROTOCOL, "re": msg["id"], "ok": True})
        except Exception as e:  # the error goes back to effbench, which stops the run
            reply = {"v": PROTOCOL, "re": msg.get("id"), "ok": False,
                     "error": {"code": type(e).__name__, "msg": str(e)}}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()
        if op == "shutdown":
            return


if __name__ == "__main__":
    serve(Runner(Device()))
