"""A small stand-in for effbench's side of Runner Protocol v1.1 training (/tmp contract
"proto11", see README.md), to test and time runner.py without effbench.

It starts the runner as a child in a fresh work directory (on /dev/shm when there is one),
serves `fetch` from an in-memory data set through batch files, sends `evaluate` every
`every_samples` served samples (holding the runner's next fetch, as effbench does), scores the
outputs itself and answers `done` at the target or the cap. Every message is checked against
the contract; a violation raises `Violation`.
"""

import json
import math
import os
import shutil
import select
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = os.path.join(HERE, ".venv", "bin", "python")


class Violation(AssertionError):
    pass


# ---------------------------------------------------------------- scoring (effbench's metrics)
def accuracy(logits, labels):
    """metrics::accuracy: share of rows whose first arg-max is the label."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def mean_nats(logits, targets):
    """NextChar::held_out_loss: mean cross-entropy in nats per character."""
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-np.take_along_axis(logp, targets[..., None], axis=-1).mean())


def roc_auc(scores, positive):
    """ROC AUC of scores (higher = more anomalous) by ranks, ties counted half."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


class Dataset:
    """Training rows (x, y or None) and the held-out inputs with effbench's scorer."""

    def __init__(self, x, y, eval_x, score, higher_is_better, target):
        self.x, self.y, self.eval_x = x, y, eval_x
        self.score, self.higher, self.target = score, higher_is_better, target

    def met(self, q):
        return q >= self.target if self.higher else q <= self.target


# ---------------------------------------------------------------- the driver
class Driver:
    def __init__(self, workload, data, recipe, every_samples, sample_cap, max_fetch=4096, threads=1,
                 timeout_s=120.0, command=None):
        self.workload, self.data, self.recipe = workload, data, recipe
        self.every, self.cap, self.max_fetch, self.threads = every_samples, sample_cap, max_fetch, threads
        self.timeout = timeout_s
        self.model = {"arch": workload}  # what train_load says of the reference model
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.work = tempfile.mkdtemp(prefix="effbench-%s-" % workload, suffix=".runner-work", dir=shm)
        os.makedirs(os.path.join(self.work, "batches"))
        os.makedirs(os.path.join(self.work, "outputs"))
        self.stderr = open(os.path.join(tempfile.gettempdir(), "jax-runner-%d.log" % os.getpid()), "ab")
        cmd = command or [PYTHON, "-u", os.path.join(HERE, "runner.py")]
        self.proc = subprocess.Popen(cmd, cwd=self.work, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, start_new_session=True, bufsize=0)
        self.buf = b""
        self.next_id = 0
        self.received = []  # every message from the runner, parsed

    def _line(self):
        """The runner's next stdout line, or None at end of file (bounded wait)."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise Violation("no message from the runner within %.0f s" % self.timeout)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
            if len(self.buf) > 1 << 20 and b"\n" not in self.buf:
                raise Violation("a line over 1 MiB from the runner")
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def send(self, msg):
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def recv(self):
        line = self._line()
        if line is None:
            raise Violation("the runner exited (status %s)" % self.proc.wait())
        try:
            msg = json.loads(line)
        except ValueError:
            raise Violation("the runner printed a line that is not JSON on stdout: %r" % line[:200]) from None
        if not isinstance(msg, dict) or msg.get("v") != 1:
            raise Violation("message without \"v\":1: %r" % (msg,))
        self.received.append(msg)
        return msg

    def request(self, op, **fields):
        """Send a request and return its reply (the runner sends no requests outside train)."""
        self.next_id += 1
        self.send({"v": 1, "id": self.next_id, "op": op, **fields})
        msg = self.recv()
        if msg.get("re") != self.next_id or not isinstance(msg.get("ok"), bool):
            raise Violation("expected the reply to %s (id %d), got %r" % (op, self.next_id, msg))
        return msg

    def load(self, seed=0):
        hello = self.request("hello", effbench="0.2.0", protocol=[1], minor=1)
        if not hello["ok"] or hello.get("protocol") != 1 or "train" not in hello.get("ops", []):
            raise Violation("hello: %r" % hello)
        d = self.data
        eval_path = os.path.join(self.work, "eval_inputs.bin")
        d.eval_x.tofile(eval_path)
        x_dtype = "int64" if d.x.dtype == np.int64 else "float32"
        decl = lambda dt, a: {"dtype": dt, "shape": [None] + list(a.shape[1:])}  # noqa: E731
        msg = {"workload": self.workload, "model": dict(self.model), "input": decl(x_dtype, d.x),
               "output": {"dtype": "float32", "shape": [None] + list(self.out_row())},
               "metric": {"name": "test", "higher_is_better": d.higher, "target": d.target},
               "train_samples": len(d.x),
               "eval": {"path": eval_path, "dtype": x_dtype, "shape": list(d.eval_x.shape)},
               "every_samples": self.every, "sample_cap": self.cap, "max_fetch": self.max_fetch,
               "recipe": self.recipe, "seed": seed, "threads": self.threads}
        if d.y is not None:
            msg["target"] = decl("int64", d.y)
        return hello, self.request("train_load", **msg)

    def out_row(self):
        return {"digits-mlp-train": (10,), "fmnist-mlp-train": (10,), "fmnist-cnn-train": (10,),
                "charlm-austen-train": (64, 75), "ae-machine-train": (640,)}[self.workload]

    def close(self):
        try:
            for op in ("unload", "shutdown"):
                if not self.request(op)["ok"]:
                    raise Violation("%s refused" % op)
            if self.proc.wait(timeout=30) != 0:
                raise Violation("the runner exited with status %s after shutdown" % self.proc.returncode)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdin.close()
            self.proc.stdout.close()
            self.stderr.close()
            shutil.rmtree(self.work, ignore_errors=True)

    # ---------------------------------------------------------------- one repeat
    def repeat(self, repeat=0, seed=0):
        """stats, mark begin, train (serving fetches, evaluating), mark end, stats."""
        before = self.request("stats")
        self.request("mark", name="repeat-%d" % repeat, phase="begin")
        t0 = time.perf_counter()
        self.next_id += 1
        train_id = self.next_id
        self.send({"v": 1, "id": train_id, "op": "train", "repeat": repeat, "seed": seed})
        r = Repeat(self)
        reply = r.serve(train_id)
        r.wall_s = time.perf_counter() - t0
        self.request("mark", name="repeat-%d" % repeat, phase="end")
        after = self.request("stats")
        r.busy_s = after.get("busy_s", 0.0) - before.get("busy_s", 0.0)
        r.reply = reply
        left = [os.path.join(dp, f) for dp, _, fs in os.walk(self.work) for f in fs if f != "eval_inputs.bin"]
        if left:
            raise Violation("files left in the work directory: %s" % left)
        return r


class Repeat:
    """The fetch/evaluate exchange of one `train`, counted as effbench counts it."""

    def __init__(self, driver):
        self.d = driver
        self.served = 0
        self.seen = set()
        self.evaluations = []  # (samples, quality)
        self.fetches = 0
        self.last_runner_id = 0
        self.next_eval = driver.every
        self.done = None  # "target" | "cap"
        self.last_batch = []

    def serve(self, train_id):
        while True:
            msg = self.d.recv()
            if msg.get("re") == train_id:
                if not msg.get("ok"):
                    raise Violation("train refused: %r" % msg)
                if self.done is None:
                    raise Violation("the runner ended training at %d samples before done" % self.served)
                return msg
            if msg.get("op") != "fetch":
                raise Violation("during train, expected a fetch or the train reply, got %r" % msg)
            self.fetch(msg)

    def fetch(self, msg):
        rid, idx = msg.get("id"), msg.get("indices")
        if not isinstance(rid, int) or rid <= self.last_runner_id:
            raise Violation("fetch id %r does not increase (last %d)" % (rid, self.last_runner_id))
        self.last_runner_id = rid
        n = len(self.d.data.x)
        if self.done is not None:
            raise Violation("fetch after done: %r" % msg)
        if (not isinstance(idx, list) or not idx or len(idx) > self.d.max_fetch
                or not all(type(i) is int and 0 <= i < n for i in idx)):
            raise Violation("bad fetch indices: %.300r" % (idx,))
        for p in self.last_batch:  # effbench deletes the previous batch's files, if still there
            if os.path.exists(p):
                os.unlink(p)
        if self.served >= self.next_eval or self.served >= self.d.cap:
            self.next_eval += self.d.every
            q = self.evaluate()
            if self.d.data.met(q) or self.served >= self.d.cap or math.isnan(q):
                self.done = "target" if self.d.data.met(q) else "invalid" if math.isnan(q) else "cap"
                self.d.send({"v": 1, "re": rid, "ok": True, "done": True, "reason": self.done})
                return
        self.d.send(self.batch(rid, idx))

    def batch(self, rid, idx):
        d = self.d.data
        rows = np.asarray(idx)
        base = os.path.join(self.d.work, "batches", "b%d" % rid)
        x = np.ascontiguousarray(d.x[rows])
        x.tofile(base + ".x.bin")
        reply = {"v": 1, "re": rid, "ok": True, "served": self.served + len(idx),
                 "x": {"path": base + ".x.bin", "dtype": str(x.dtype), "shape": list(x.shape)}}
        self.last_batch = [base + ".x.bin"]
        if d.y is not None:
            y = np.ascontiguousarray(d.y[rows])
            y.tofile(base + ".y.bin")
            reply["y"] = {"path": base + ".y.bin", "dtype": "int64", "shape": list(y.shape)}
            self.last_batch.append(base + ".y.bin")
        self.served += len(idx)
        self.seen.update(idx)
        self.fetches += 1
        return reply

    def evaluate(self):
        self.d.next_id += 1
        eid = self.d.next_id
        path = os.path.join(self.d.work, "outputs", "e%d.bin" % eid)
        self.d.send({"v": 1, "id": eid, "op": "evaluate", "samples": self.served, "output": path})
        msg = self.d.recv()
        if msg.get("re") != eid or not msg.get("ok"):
            raise Violation("expected the reply to evaluate %d, got %r" % (eid, msg))
        out = msg.get("output") or {}
        want = [len(self.d.data.eval_x)] + list(self.d.out_row())
        if out.get("path") != path or out.get("dtype") != "float32" or out.get("shape") != want:
            raise Violation("evaluate output %r, expected %s float32 %s" % (out, path, want))
        if os.path.getsize(path) != 4 * math.prod(want):
            raise Violation("evaluate output file has %d bytes, shape %s needs %d"
                            % (os.path.getsize(path), want, 4 * math.prod(want)))
        y = np.fromfile(path, dtype="<f4").reshape(want)
        os.unlink(path)
        q = self.d.data.score(y) if np.isfinite(y).all() else float("nan")
        self.evaluations.append((self.served, q))
        print("  eval at %d samples: %.4f" % (self.served, q), file=sys.stderr)
        return q
