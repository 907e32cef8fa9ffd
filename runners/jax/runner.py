#!/usr/bin/env python3
"""effbench's JAX reference training runner: Runner Protocol v1.1 (training) on JAX + optax.

effbench starts it through runner.toml and drives it over stdin/stdout (docs/runner-protocol.md,
v1 framing; v1.1 training): hello, train_load, then per repeat stats / mark / train (during
which the runner asks for batches by index with `fetch` and answers effbench's `evaluate`),
unload, shutdown. Replies only on stdout; every log line goes to stderr. Set up with
`bash runners/jax/setup.sh`. Bare timing without effbench: `runner.py --bench WORKLOAD`.
"""

import json
import math
import os
import sys
import time
from importlib import metadata

PROTOCOL, MINOR = 1, 1
MAX_LINE = 1 << 20  # the protocol's 1 MiB per line
MAX_ROWS = 1 << 24  # no tensor file with more rows is read
NP = {"float32": "<f4", "int64": "<i8"}
trainer = None  # the module, imported once the thread count is known (XLA reads it at start)


def log(*args):
    print("jax-runner:", *args, file=sys.stderr, flush=True)


class ProtocolError(Exception):
    """effbench sent something the runner cannot use; the runner refuses or stops."""


PLATFORMS = ("cpu", "cuda")


def select_platform():
    """The JAX platform, from EFFBENCH_JAX_PLATFORM (runner.toml's `env`, or effbench's own
    environment): `cpu` (default) or `cuda`. JAX_PLATFORMS is set to exactly that, so JAX never
    falls back to another. Returns (platform, device name, energy domain); with `cuda` and no
    CUDA device JAX can use, a ProtocolError: the run stops, it never goes on on the CPU."""
    p = (os.environ.get("EFFBENCH_JAX_PLATFORM") or "cpu").strip().lower()
    if p not in PLATFORMS:
        raise ProtocolError("EFFBENCH_JAX_PLATFORM=%r: this runner runs on %s" % (p, " or ".join(PLATFORMS)))
    os.environ["JAX_PLATFORMS"] = p
    if p == "cpu":
        return p, "XLA cpu", "cpu"
    try:
        import jax
        dev = jax.devices("cuda")[0]
    except Exception as e:  # jax raises RuntimeError, or a bare AssertionError, without one
        try:
            why = "%s: %s" % (type(e).__name__, e) if str(e) else "jax-cuda13-plugin %s installed" % (
                metadata.version("jax-cuda13-plugin"))
        except metadata.PackageNotFoundError:
            why = "jax-cuda13-plugin is not installed"
        raise ProtocolError(
            "EFFBENCH_JAX_PLATFORM=cuda, but JAX %s finds no CUDA device (%s); install the CUDA build with "
            "`bash runners/jax/setup.sh --cuda` on a machine with an NVIDIA GPU and driver, or set "
            "EFFBENCH_JAX_PLATFORM=cpu" % (metadata.version("jax"), why)) from e
    log("JAX platform cuda: %s (device %d)" % (dev.device_kind, dev.id))
    return p, "XLA cuda %s" % dev.device_kind, "gpu:%d" % dev.id


def configure_threads(threads):
    """Honour `threads` before jax is imported: XLA sizes its pools once, from the schedulable
    CPUs and XLA_FLAGS (as bench/peers/jax_steps.py)."""
    global trainer
    if trainer is not None:
        return
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if threads:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < threads:
            log("threads=%d asked, only CPUs %s are available: using them all" % (threads, cpus))
        os.sched_setaffinity(0, cpus[:threads])
        if threads == 1:
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                       " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    import trainer as module  # noqa: E402  (after the environment above)
    trainer = module


def check_tensor(decl, what, dtype, row, rows=None):
    """A tensor file effbench named, checked (dtype, row shape, row count, size) before reading:
    returns (path, shape, bytes)."""
    if not isinstance(decl, dict):
        raise ProtocolError("%s: expected a tensor {path, dtype, shape}, got %r" % (what, decl))
    path, shape = decl.get("path"), decl.get("shape")
    if decl.get("dtype") != dtype:
        raise ProtocolError("%s: dtype %r, the model takes %s" % (what, decl.get("dtype"), dtype))
    if (not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape)
            or tuple(shape[1:]) != tuple(row) or shape[0] > MAX_ROWS or (rows is not None and shape[0] != rows)):
        want = [rows if rows is not None else "n"] + list(row)
        raise ProtocolError("%s: shape %r, expected %s" % (what, shape, want))
    if not isinstance(path, str):
        raise ProtocolError("%s: path %r is not a string" % (what, path))
    want = math.prod(shape) * (8 if dtype == "int64" else 4)
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise ProtocolError("%s: cannot read %s: %s" % (what, path, e)) from e
    if size != want:
        raise ProtocolError("%s: %s has %d bytes, shape %r of %s needs %d" % (what, path, size, shape, dtype, want))
    return path, shape, want


def aligned_empty(shape, dtype):
    """An uninitialised array whose data starts on a 64-byte boundary. XLA on the CPU takes
    such an array's rows without copying them; numpy's own allocations are aligned to 16 bytes
    only. Measured: an fmnist-mlp evaluation of 2,000 rows, 5.8 ms from np.fromfile's array
    against 4.9 ms aligned (the same pass, the same process, 2026-12-02)."""
    import numpy as np
    dt = np.dtype(dtype)
    n = math.prod(shape)
    raw = np.empty(n * dt.itemsize + 64, np.uint8)
    off = -raw.ctypes.data % 64
    return raw[off:off + n * dt.itemsize].view(dt).reshape(shape)


def read_tensor(decl, what, dtype, row, rows=None):
    """A tensor file effbench named, checked, read into a new (64-byte aligned) array."""
    path, shape, want = check_tensor(decl, what, dtype, row, rows)
    arr = aligned_empty(shape, NP[dtype])
    try:
        with open(path, "rb", buffering=0) as f:
            got = f.readinto(memoryview(arr.reshape(-1)).cast("B"))
    except OSError as e:
        raise ProtocolError("%s: cannot read %s: %s" % (what, path, e)) from e
    if got != want:
        raise ProtocolError("%s: read %d bytes of %s, expected %d" % (what, got, path, want))
    return arr


def read_into(decl, what, dtype, row, rows, buf):
    """A batch file, checked, read into the first `rows` rows of the preallocated array `buf`
    (one copy, no allocation: a fresh 6.4 MB array per fetch costs its page faults); returns
    that view, valid until the next read into `buf`."""
    path, shape, want = check_tensor(decl, what, dtype, row, rows)
    view = buf[:shape[0]]
    try:
        with open(path, "rb", buffering=0) as f:
            got = f.readinto(memoryview(view).cast("B"))
    except OSError as e:
        raise ProtocolError("%s: cannot read %s: %s" % (what, path, e)) from e
    if got != want:
        raise ProtocolError("%s: read %d bytes of %s, expected %d" % (what, got, path, want))
    return view


class Wire:
    """Lines in (bounded), replies and requests out on the protocol's own copy of stdout."""

    def __init__(self, inp, out):
        self.inp, self.out = inp, out
        self.next_id = 0
        self.wait_s = 0.0  # time blocked reading stdin

    def recv(self):
        t0 = time.perf_counter()
        line = self.inp.readline(MAX_LINE + 1)
        self.wait_s += time.perf_counter() - t0
        if not line:
            return None
        if len(line) > MAX_LINE:
            raise SystemExit("jax-runner: a line from effbench is over 1 MiB; stopping")
        try:
            msg = json.loads(line)
        except ValueError as e:
            raise SystemExit("jax-runner: effbench sent a line that is not JSON (%s): %.200r" % (e, line))
        if not isinstance(msg, dict):
            raise SystemExit("jax-runner: effbench sent %.200r, not a JSON object" % (line,))
        return msg

    def send(self, msg):
        msg["v"] = PROTOCOL
        self.out.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())
        self.out.flush()

    def request(self, op, **fields):
        self.next_id += 1
        self.send({"id": self.next_id, "op": op, **fields})
        return self.next_id


class Runner:
    def __init__(self, wire):
        self.wire = wire
        self.session = None  # the Trainer after train_load

    # ---- requests from effbench
    def hello(self, msg):
        if PROTOCOL not in (msg.get("protocol") or []):
            raise ProtocolError("effbench speaks protocol %r; this runner speaks %d" % (msg.get("protocol"), PROTOCOL))
        platform, device, domain = select_platform()
        jax_v = metadata.version("jax")
        return {"protocol": PROTOCOL, "minor": MINOR, "ops": ["train"],
                "runner": "effbench-jax-runner 0.1 (jax %s, optax %s)" % (jax_v, metadata.version("optax")),
                "vendor": "effbench (JAX reference)",
                "device": {"name": device, "domain": domain},
                "driver": "jaxlib %s" % metadata.version("jaxlib"), "precisions": ["f32"], "telemetry": ["busy_s"],
                # Batch files rewritten in place; mapped_batches keeps each file's size fixed, so
                # the runner maps it once per repeat and steps on the rows in place;
                # prefetch_batches (preferred by an effbench that knows it) adds a second pair,
                # so the runner asks for its next chunk before it trains on the current one.
                "features": ["prefetch_batches", "mapped_batches", "reuse_batches"]}

    def train_load(self, msg):
        configure_threads(int(msg.get("threads") or 0))
        recipe = trainer.Recipe(msg.get("recipe") or {})
        t = trainer.Trainer(msg.get("workload"), recipe, msg.get("train_samples", 0))
        net = t.net
        self.check_decl(msg, "input", net.x_dtype, net.x_row)
        if net.y_row is not None:
            self.check_decl(msg, "target", "int64", net.y_row)
        self.check_decl(msg, "output", "float32", net.out_row)
        self.check_reference(msg.get("model"), net)
        self.eval_x = read_tensor(msg.get("eval"), "train_load eval", net.x_dtype, net.x_row)
        self.max_fetch = int(msg.get("max_fetch") or recipe.batch_size)
        if self.max_fetch < 1:
            raise ProtocolError("max_fetch %r: must be at least 1" % msg.get("max_fetch"))
        self.seed = int(msg.get("seed") or 0)
        # effbench rewrites one file per slot in place (our hello asked for it): "prefetch" (two
        # pairs in turn, each sized for max_fetch rows, mapped once per repeat: the next chunk is
        # asked for while the current one trains), "mapped" (one such pair) or "reuse" (cut to
        # each batch, read into self.bufs); an effbench that knows none sends fresh files,
        # deleted once read.
        self.mode = msg.get("batch_files")
        self.maps = {}
        import numpy as np
        self.bufs = [np.empty((self.max_fetch,) + tuple(net.x_row), net.x_dtype),
                     None if net.y_row is None else np.empty((self.max_fetch,) + tuple(net.y_row), np.int64)]
        self.every = int(msg.get("every_samples") or 0)
        self.cap = int(msg.get("sample_cap") or 0)
        t0 = time.perf_counter()
        t.warm(self.eval_x)
        log("%s: %d parameters, compiled in %.2f s" % (msg.get("workload"), net.count(), time.perf_counter() - t0))
        t.busy_s = 0.0
        self.session = t
        return {"division": "closed", "params": net.count(), "precision": "f32"}

    @staticmethod
    def check_reference(model, net):
        """The closed division claims effbench's reference model: when train_load lists its
        parameters (`model.params`: name and shape each, or `param_count`), they must be ours."""
        model = model if isinstance(model, dict) else {}
        ours = [(n, list(s)) for n, s, _, _ in net.specs]
        listed = model.get("params")
        if isinstance(listed, list) and all(isinstance(p, dict) for p in listed):
            theirs = [(p.get("name"), p.get("shape")) for p in listed]
            if theirs != ours:
                diff = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
                raise ProtocolError("model.params differ from this runner's model at parameter %d: effbench lists %r, "
                                    "the runner has %r (%d vs %d parameter tensors)"
                                    % (diff, theirs[diff] if diff < len(theirs) else None,
                                       ours[diff] if diff < len(ours) else None, len(theirs), len(ours)))
        elif listed is not None:
            log("model.params is not a list of {name, shape}: not checked")
        count = model.get("param_count")
        if isinstance(count, int) and count != net.count():
            raise ProtocolError("model.param_count is %d, this runner's model has %d" % (count, net.count()))

    @staticmethod
    def check_decl(msg, key, dtype, row):
        d = msg.get(key)
        if not isinstance(d, dict) or d.get("dtype") != dtype or tuple(d.get("shape", [])[1:]) != tuple(row):
            raise ProtocolError("train_load %s: %r; this runner's model takes %s [n, %s]"
                                % (key, d, dtype, ", ".join(map(str, row))))

    def train(self, msg):
        t = self.need_session()
        seed = int(msg.get("seed", self.seed))
        self.maps = {}  # effbench creates a repeat's batch files at its first fetch
        busy, wait, t0 = t.busy_s, self.wire.wait_s, time.perf_counter()
        if self.mode == "prefetch" and t.recipe.batch_size <= self.max_fetch:
            source, limit = Ahead(self), min(self.max_fetch, max(FETCH_ROWS, t.recipe.batch_size))
        else:
            source, limit = self.fetch, self.max_fetch
        steps = t.train(seed, source, self.every, self.cap, limit)
        wall, busy, wait = time.perf_counter() - t0, t.busy_s - busy, self.wire.wait_s - wait
        log("train: %d steps in %.3f s: busy %.3f s, waiting for effbench %.3f s, the rest (messages, "
            "batch files, padding) %.3f s" % (steps, wall, busy, wait, wall - busy - wait))
        self.maps = {}  # effbench deletes the files at the repeat's end
        return {"steps": steps, "busy_s": t.busy_s}

    def evaluate(self, msg):
        t = self.need_session()
        if t.params is None:
            raise ProtocolError("evaluate before any train: there is no model yet")
        path = msg.get("output")
        if not isinstance(path, str):
            raise ProtocolError("evaluate: output %r is not a path" % (path,))
        out = t.output(self.eval_x)
        with open(path, "wb") as f:
            f.write(out.tobytes())
        return {"output": {"path": path, "dtype": "float32", "shape": list(out.shape)}}

    def stats(self, msg):
        return {"busy_s": self.session.busy_s if self.session else 0.0}

    def mark(self, msg):
        if self.session:
            self.session.ready()
        return {"t_mono_ns": time.monotonic_ns()}

    def unload(self, msg):
        self.session = None
        return {}

    def flush(self, msg):
        self.mark(msg)
        return {}

    def shutdown(self, msg):
        return {}

    def need_session(self):
        if self.session is None:
            raise ProtocolError("no workload loaded: send train_load first")
        return self.session

    # ---- the runner's own requests during train
    def fetch(self, idx):
        """Ask effbench for the rows `idx` (in pieces of at most max_fetch); None once done."""
        import numpy as np
        idx = np.asarray(idx)
        xs, ys = [], []
        for s in range(0, len(idx), self.max_fetch):
            got = self.fetch_part(idx[s:s + self.max_fetch].tolist())
            if got is None:
                return None
            if len(idx) <= self.max_fetch:
                return got
            xs.append(got[0].copy())  # the next part reuses the buffers
            ys.append(None if got[1] is None else got[1].copy())
        return np.concatenate(xs), (None if ys[0] is None else np.concatenate(ys))

    def fetch_part(self, part):
        return self.receive(self.wire.request("fetch", indices=part), len(part))

    def receive(self, rid, n):
        """The batch that answers fetch `rid` (of `n` rows), answering effbench's evaluate
        meanwhile; None once effbench says done."""
        while True:
            msg = self.wire.recv()
            if msg is None:
                raise SystemExit("jax-runner: effbench closed stdin during train")
            if "op" in msg:  # effbench's request while it holds the fetch (evaluate)
                self.handle(msg)
                continue
            if msg.get("re") != rid:
                raise SystemExit("jax-runner: reply to %r while fetch %d is outstanding: %.200r"
                                 % (msg.get("re"), rid, msg))
            if not msg.get("ok"):
                raise SystemExit("jax-runner: effbench refused fetch %d: %r" % (rid, msg.get("error")))
            if msg.get("done"):
                log("done at fetch %d: %s" % (rid, msg.get("reason")))
                return None
            return self.batch_files(msg, n)

    def batch_files(self, msg, n):
        net = self.session.net
        if self.mode in ("mapped", "prefetch"):
            x = self.mapped(msg.get("x"), "fetch reply x", net.x_dtype, net.x_row, n)
            y = None if net.y_row is None else self.mapped(msg.get("y"), "fetch reply y", "int64", net.y_row, n)
            return x, y
        x = read_into(msg.get("x"), "fetch reply x", net.x_dtype, net.x_row, n, self.bufs[0])
        y = None
        if net.y_row is not None:
            y = read_into(msg.get("y"), "fetch reply y", "int64", net.y_row, n, self.bufs[1])
        if self.mode == "reuse":
            return x, y  # effbench rewrites them at the next fetch and deletes them at the end
        for d in (msg.get("x"), msg.get("y")):
            if isinstance(d, dict) and isinstance(d.get("path"), str):
                try:
                    os.unlink(d["path"])
                except FileNotFoundError:
                    pass
        return x, y

    def mapped(self, decl, what, dtype, row, n):
        """The first `n` rows of a mapped batch file (mapped_batches: effbench sized it for
        max_fetch rows and rewrites it in place), as a read-only view of the runner's one
        mapping of it per repeat: no copy. Valid until the next fetch."""
        if not isinstance(decl, dict) or not isinstance(decl.get("shape"), list) or decl["shape"][:1] != [n]:
            raise ProtocolError("%s: %r, expected a tensor of %d rows" % (what, decl, n))
        # The file holds max_fetch rows whatever the batch: that is what is checked against its size.
        path, shape, _ = check_tensor(dict(decl, shape=[self.max_fetch] + decl["shape"][1:]), what, dtype, row)
        m = self.maps.get(path)
        if m is None:
            import mmap
            import numpy as np
            try:
                with open(path, "rb") as f:
                    mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            except (OSError, ValueError) as e:
                raise ProtocolError("%s: cannot map %s: %s" % (what, path, e)) from e
            # A plain ndarray over the mapping, not an np.memmap: JAX takes a subclass of
            # ndarray by a slower path (measured: +0.15 ms per fmnist-mlp step).
            m = self.maps[path] = np.frombuffer(mm, dtype=NP[dtype]).reshape(shape)
        return m[:n]

    # ---- dispatch
    def handle(self, msg):
        op = msg.get("op")
        handler = getattr(self, op, None) if op in OPS else None
        try:
            if handler is None:
                raise ProtocolError("unknown op %r (this runner does: %s)" % (op, ", ".join(OPS)))
            reply = handler(msg)
            reply.update({"re": msg.get("id"), "ok": True})
        except Exception as e:  # the refusal goes back to effbench, which stops the run
            log("%s failed: %s: %s" % (op, type(e).__name__, e))
            code = "BAD_REQUEST" if isinstance(e, (ProtocolError, ValueError, KeyError)) else type(e).__name__
            reply = {"re": msg.get("id"), "ok": False, "error": {"code": code, "msg": str(e).strip("'\"")}}
        self.wire.send(reply)
        return op


class Ahead:
    """The trainer's source under prefetch_batches: `ask` sends the fetch at once, `take` waits
    for its reply. The trainer asks for chunk k+1 right after it takes chunk k, so effbench
    writes k+1 into the other file pair while k trains, and at most one fetch is outstanding;
    the runner is done with chunk k (its steps have returned) before it asks for k+2, which
    effbench writes where k was."""
    ahead = True

    def __init__(self, runner):
        self.runner, self.asked = runner, []

    def ask(self, idx):
        self.asked.append((self.runner.wire.request("fetch", indices=idx.tolist()), len(idx)))

    def take(self):
        return self.runner.receive(*self.asked.pop(0))


# Rows per fetch under prefetch_batches (at least a batch, at most max_fetch): small enough that
# the fetch effbench holds for an evaluation, written after it, costs little; large enough that
# the runner's own work per fetch stays small beside the steps. EFFBENCH_JAX_FETCH_ROWS
# overrides it. Measured in runners/jax/README.md, "Speed".
FETCH_ROWS = int(os.environ.get("EFFBENCH_JAX_FETCH_ROWS") or 512)

OPS = ("hello", "train_load", "train", "evaluate", "stats", "mark", "flush", "unload", "shutdown")


def serve():
    # The protocol gets its own copy of stdout; fd 1 then points at stderr, so a stray print
    # (Python's or a C library's) can never corrupt the replies.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    wire = Wire(sys.stdin.buffer, out)
    runner = Runner(wire)
    while True:
        msg = wire.recv()
        if msg is None:
            return
        if runner.handle(msg) == "shutdown":
            return


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bench":
        import bench
        bench.main(sys.argv[2:], configure_threads)
    else:
        serve()
