#!/usr/bin/env python3
"""A minimal Runner Protocol v1.1 runner for effbench, to adapt to a device in an afternoon.

effbench starts this program (named in a runner TOML, see runner.toml next to it) and talks
to it with one JSON object per line on stdin/stdout; docs/runner-protocol.md is the full text.
Everything protocol-related is done here, with the Python standard library only. What you
replace is the class `Device` at the top: `load` (compile the ONNX model for your device) and
`compute` (run one batch). Keep stdout for protocol messages: log to stderr.

As shipped, `Device` understands only the test format `effbench-reference-outputs` (effbench's
own answers, handed over by effbench's test suite), so effbench's tests run this very file as a
protocol-conformant runner without any inference library. Given a real ONNX model it says
that `compute` has not been written yet.

Training (protocol v1.1, training workloads): replace the class `Model` (`load`, `step`,
`predict`). The loop in `Runner.train` asks effbench for batches by index (`fetch`), answers
effbench's `evaluate` requests with `Model.predict` on the held-out inputs, and ends when
effbench answers a fetch with `done`. As shipped, `Model` is a stand-in with no learning
library: a nearest-neighbour classifier that memorises every fetched sample (enough to reach
digits-mlp-train's target), so effbench's tests run this file as a training runner too.
TEMPLATE_HOSTILE=<mode> makes it misbehave on purpose (effbench's tests; see `HOSTILE`).
"""

import array
import json
import os
import random
import sys
import time

PROTOCOL = 1
MINOR = 1
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


class Model:
    """Replace this class with your trainer (it is the only training code you write).

    As shipped: a memorising 1-nearest-neighbour classifier over float32 inputs and int64
    labels, standard library only. Inputs are quantised to 0..16 and packed into one integer
    per sample, so a dot product is one big-integer multiplication (fast enough in Python)."""

    def load(self, msg):
        """`msg` is effbench's `train_load`: workload, model (the reference architecture),
        input/target/output declarations, metric, recipe, seed. Return (division, params):
        "closed" with the reference architecture, "open" otherwise; your parameter count."""
        self.dim = msg["input"]["shape"][1]
        self.classes = msg["output"]["shape"][1]
        self.lane = (256 * self.dim).bit_length() + 1
        self.reset(msg["seed"])
        return "open", 0

    def reset(self, seed):
        """A fresh model for a repeat (`train` carries the repeat's seed)."""
        self.memory = {}  # index -> (packed, packed reversed, |x|^2, label)

    def _quantise(self, xs):
        return [min(16, max(0, int(round(v * 16)))) for v in xs]

    def step(self, indices, x, y):
        """One training step on a batch: `x` float32 rows (array('f')), `y` int64 labels."""
        d = self.dim
        for k, i in enumerate(indices):
            q = self._quantise(x[k * d:(k + 1) * d])
            fwd = sum(v << (self.lane * j) for j, v in enumerate(q))
            self.memory[i] = (fwd, sum(v * v for v in q), int(y[k]))

    def predict(self, x, rows):
        """Outputs for `rows` held-out inputs: float32 logits [rows, classes] (array('f'))."""
        d, lane = self.dim, self.lane
        mask = (1 << lane) - 1
        shift = lane * (d - 1)
        mem = list(self.memory.values())
        out = array.array("f", bytes(4 * rows * self.classes))
        for r in range(rows):
            q = self._quantise(x[r * d:(r + 1) * d])
            rev = sum(v << (lane * (d - 1 - j)) for j, v in enumerate(q))
            best, label = None, 0
            for fwd, norm, lab in mem:
                dist = norm - 2 * (((fwd * rev) >> shift) & mask)
                if best is None or dist < best:
                    best, label = dist, lab
            out[r * self.classes + label] = 1.0
        return out


# Misbehaviour on purpose, for effbench's tests only (TEMPLATE_HOSTILE=<mode>): out-of-range,
# too-many, non-integer, empty, bad-shape, nan, no-evaluate, crash, early, fetch-after-done,
# no-train (a v1 runner's hello), zeros (a model that never learns: the cap is reached).
HOSTILE = os.environ.get("TEMPLATE_HOSTILE", "")
# Batch files rewritten in place (the `reuse_batches` feature, on by default): effbench then
# writes one x file and one y file per repeat instead of a fresh pair per fetch. FRESH=1 asks
# for v1.1's fresh files (effbench's tests run both).
FRESH = os.environ.get("TEMPLATE_FRESH", "") == "1"
# TEMPLATE_MAPPED=1 asks for `mapped_batches` instead: the same two files, sized once for
# max_fetch rows; the runner maps each once per repeat and checks that effbench never resizes
# or replaces it (an error otherwise, which fails the run).
MAPPED = os.environ.get("TEMPLATE_MAPPED", "") == "1"
# TEMPLATE_PREFETCH=1 asks for `prefetch_batches`: two mapped file pairs in turn. The runner then
# sends each fetch before it steps on the batch it has, and checks, once effbench has answered,
# that the batch it had is still as it was read (effbench wrote the new one into the other
# pair) and that the pairs alternate (an error otherwise, which fails the run).
PREFETCH = os.environ.get("TEMPLATE_PREFETCH", "") == "1"
CRASH_REPEAT = int(os.environ.get("TEMPLATE_CRASH_REPEAT", "0"))  # mode crash: in this repeat


def log(*args):
    print("template-runner:", *args, file=sys.stderr, flush=True)


class Runner:
    def __init__(self, device, model=None):
        self.device = device
        self.samples = b""
        self.row_bytes = 0
        self.busy_s = 0.0
        self.h2d_bytes = 0
        self.d2h_bytes = 0
        self.model = model if model is not None else Model()
        self.wire = None  # set by serve(): training sends requests of its own

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
            **({} if HOSTILE == "no-train" else {"minor": MINOR, "ops": ["infer", "train"]}),
            # Read every batch before the next fetch and never delete it: effbench rewrites it.
            **({} if FRESH else {"features": [
                "prefetch_batches" if PREFETCH else "mapped_batches" if MAPPED else "reuse_batches"]}),
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

    # ---- training (protocol v1.1)
    def train_load(self, msg):
        self.load_msg = msg
        self.reuse = msg.get("batch_files") in ("reuse", "mapped", "prefetch")  # what effbench will do
        self.mapped = msg.get("batch_files") in ("mapped", "prefetch")
        self.ahead = msg.get("batch_files") == "prefetch"
        for asked, mode in ((MAPPED, "mapped"), (PREFETCH, "prefetch")):
            if asked and msg.get("batch_files") != mode:
                raise ValueError("TEMPLATE_%s=1 asked for %s_batches; effbench said batch_files=%r"
                                 % (mode.upper(), mode, msg.get("batch_files")))
        self.train_samples = msg["train_samples"]
        self.max_fetch = msg["max_fetch"]
        self.batch = int(msg["recipe"].get("batch_size", 32))
        ev = msg["eval"]
        with open(ev["path"], "rb") as f:
            self.eval_x = array.array("f", f.read())
        self.eval_rows = ev["shape"][0]
        self.out_row = 1
        for n in msg["output"]["shape"][1:]:
            self.out_row *= n
        division, params = self.model.load(msg)
        return {"division": division, "params": params, "precision": "f32"}

    def evaluate(self, msg):
        if HOSTILE == "no-evaluate":
            time.sleep(3600)
        t0 = time.perf_counter()
        out = self.model.predict(self.eval_x, self.eval_rows)
        self.busy_s += time.perf_counter() - t0
        shape = [self.eval_rows, self.out_row]
        if HOSTILE == "nan":
            out = array.array("f", [float("nan")] * len(out))
        if HOSTILE == "zeros":
            out = array.array("f", bytes(len(out) * 4))
        if HOSTILE == "bad-shape":
            shape = [self.eval_rows, self.out_row + 1]
        with open(msg["output"], "wb") as f:
            f.write(out.tobytes())
        return {"output": {"path": msg["output"], "dtype": "float32", "shape": shape}}

    def fetch(self, indices):
        """Asks effbench for samples `indices`; answers its evaluate requests meanwhile.
        Returns (x, y) arrays, or None when effbench says done."""
        return self.receive(self.ask(indices))

    def ask(self, indices):
        """Sends a fetch for `indices`; returns its id."""
        self.wire.next_id += 1
        rid = self.wire.next_id
        self.wire.send({"v": PROTOCOL, "id": rid, "op": "fetch", "indices": indices})
        return rid

    def receive(self, rid):
        """The reply to fetch `rid`: (x, y), or None at done; evaluate answered meanwhile."""
        while True:
            msg = self.wire.recv()
            if "op" in msg:  # effbench's request while it holds our fetch: evaluate
                self.wire.answer(self, msg)
                continue
            if msg.get("re") != rid or not msg.get("ok"):
                raise RuntimeError("unexpected reply to fetch %d: %.200r" % (rid, msg))
            if msg.get("done"):
                log("done at fetch %d: %s" % (rid, msg.get("reason")))
                return None
            self.last = [msg["x"]] + ([msg["y"]] if "y" in msg else [])
            x = self._read(msg["x"], "f")
            y = self._read(msg["y"], "q") if "y" in msg else None
            return x, y

    def check_kept(self, had):
        """prefetch_batches: once effbench answered the next fetch, the batch `had` (its
        tensors and the arrays read from them) is still in its files, and the new batch is in
        the other pair."""
        for (t, a), new in zip(had, self.last):
            if new["path"] == t["path"]:
                raise RuntimeError("prefetch_batches: two batches in a row in %s" % t["path"])
            m = self.maps[t["path"]][0]
            if m[:len(a) * a.itemsize] != a.tobytes():
                raise RuntimeError("prefetch_batches: effbench rewrote %s (the batch before) while its next "
                                   "fetch was answered" % t["path"])

    def _read(self, t, code):
        if self.mapped:
            a = self._read_mapped(t, code)
        else:
            with open(t["path"], "rb") as f:
                a = array.array(code, f.read())
        self.paths.add(t["path"])
        if not self.reuse:
            os.unlink(t["path"])  # effbench would delete it at the next fetch anyway
        self.h2d_bytes += len(a) * a.itemsize
        return a

    def _read_mapped(self, t, code):
        """The first shape[0] rows of a mapped batch file, through this repeat's one mapping
        of it. The file must hold max_fetch rows and be the same file all repeat."""
        import mmap
        row = array.array(code).itemsize
        for n in t["shape"][1:]:
            row *= n
        m = self.maps.get(t["path"])
        if m is None:
            with open(t["path"], "rb") as f:
                m = self.maps[t["path"]] = (mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ), os.fstat(f.fileno()).st_ino)
        st = os.stat(t["path"])
        if st.st_ino != m[1] or st.st_size != self.max_fetch * row or len(m[0]) != st.st_size:
            raise RuntimeError("mapped batch file %s changed: inode %d (mapped %d), %d bytes, expected %d (max_fetch rows)"
                               % (t["path"], st.st_ino, m[1], st.st_size, self.max_fetch * row))
        return array.array(code, m[0][:t["shape"][0] * row])

    def train(self, msg):
        """One repeat: fetch batches of the recipe's size from a seeded shuffle, step, until
        effbench answers done. The reply carries only the runner's own counters. Under
        prefetch_batches each fetch goes out before the step on the batch before it."""
        self.model.reset(msg["seed"])
        self.paths = set()
        self.maps = {}  # mapped_batches: path -> (mapping, inode), for this repeat
        rng = random.Random(msg["seed"])
        order = list(range(self.train_samples))
        steps = 0
        have = None  # under prefetch: (indices, batch, its tensors) received, not yet stepped on
        while True:
            rng.shuffle(order)
            for s in range(0, len(order), self.batch):
                idx = order[s:s + self.batch]
                idx = self.hostile_indices(idx, steps)
                if HOSTILE == "crash" and steps == 5 and msg["repeat"] == CRASH_REPEAT:
                    log("crashing on purpose")
                    os._exit(3)
                if HOSTILE == "early" and steps == 3:
                    return {"steps": steps, "reached": True, "samples": 999999}
                if self.ahead:
                    rid = self.ask(idx)
                    if have is not None:
                        self.step(*have[:2])
                        steps += 1
                    got = self.receive(rid)
                    if got is not None and have is not None:
                        self.check_kept(zip(have[2], have[1]))
                    have = None if got is None else (idx, got, self.last)
                else:
                    got = self.fetch(idx)
                    if got is not None:
                        self.step(idx, got)
                        steps += 1
                if got is None:
                    log("train: %d steps, batch files at %d paths" % (steps, len(self.paths)))
                    if HOSTILE == "fetch-after-done":
                        self.fetch([0])
                    return {"steps": steps, "busy_s": self.busy_s}

    def step(self, idx, got):
        t0 = time.perf_counter()
        self.model.step(idx, got[0], got[1])
        self.busy_s += time.perf_counter() - t0

    def hostile_indices(self, idx, steps):
        if steps != 2:
            return idx
        if HOSTILE == "out-of-range":
            return idx[:-1] + [self.train_samples]
        if HOSTILE == "too-many":
            return list(range(self.max_fetch + 1))
        if HOSTILE == "non-integer":
            return idx[:-1] + [1.5]
        if HOSTILE == "empty":
            return []
        return idx


# Methods that are not protocol ops: effbench cannot call them by name.
NOT_OPS = ("run_batches", "fetch", "hostile_indices", "ask", "receive", "check_kept", "step")


class Wire:
    """The message loop's two pipes: one JSON object per line each way."""

    def __init__(self, stdin, stdout):
        self.lines, self.stdout = iter(stdin), stdout
        self.next_id = 0  # the runner's own request ids (fetch)

    def send(self, obj):
        self.stdout.write(json.dumps(obj) + "\n")
        self.stdout.flush()

    def recv(self):
        while True:
            line = next(self.lines, "")
            if not line:
                raise SystemExit("effbench closed stdin")
            if line.strip():
                return json.loads(line)

    def answer(self, runner, msg):
        """Runs the handler for effbench's request `msg` and sends its reply."""
        op = msg.get("op")
        try:
            handler = getattr(runner, op, None) if isinstance(op, str) and not op.startswith("_") else None
            if handler is None or op in NOT_OPS:
                raise ValueError("unknown op %r" % op)
            reply = handler(msg)
            reply.update({"v": PROTOCOL, "re": msg["id"], "ok": True})
        except Exception as e:  # the error goes back to effbench, which stops the run
            reply = {"v": PROTOCOL, "re": msg.get("id"), "ok": False,
                     "error": {"code": type(e).__name__, "msg": str(e)}}
        self.send(reply)
        return op


def serve(runner, stdin=sys.stdin, stdout=sys.stdout):
    runner.wire = Wire(stdin, stdout)
    while True:
        try:
            msg = runner.wire.recv()
        except SystemExit:
            return
        if runner.wire.answer(runner, msg) == "shutdown":
            return


if __name__ == "__main__":
    serve(Runner(Device()))
