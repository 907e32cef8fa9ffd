#!/usr/bin/env python3
"""A PyTorch training runner for effbench (Runner Protocol v1.1), to fill in within an afternoon.

effbench starts this program (see runner.toml next to it) and drives it over stdin/stdout, one
JSON object per line (docs/runner-protocol.md, "Training"). effbench serves every training
sample by index and scores every evaluation itself; this runner only trains. The file has two
parts:

- the message loop (`Loop`, standard library only): hello, train_load, train (the runner's
  `fetch` requests, effbench's `evaluate` requests), mark, stats, flush, unload, shutdown;
- the model (`TorchMLP`): the reference MLP (digits 64-128-10, fmnist 784-128-10) in PyTorch,
  initialised as effbench's candle model (weight (in, out) and bias ~ U(+-1/sqrt(in))), trained
  with the recipe's optimizer. Replace it with your method; keep its four methods.

A model has `load(msg) -> (division, params)`, `reset(seed)`, `step(x, y)` (a batch as numpy-free
raw bytes: x float32 rows, y int64 labels) and `predict(x, rows) -> bytes` (float32 outputs).
`Loop` never imports torch, so effbench's tests drive it with a fake model
(harness/tests/fixtures/runners/torch_fake.py) where PyTorch is not installed.
"""

import json
import os
import random
import sys
import time

PROTOCOL = 1
MINOR = 1


def log(*args):
    print("torch-template:", *args, file=sys.stderr, flush=True)


class TorchMLP:
    """The reference MLP in PyTorch. `import torch` happens here only."""

    def load(self, msg):
        import torch
        self.torch = torch
        torch.set_num_threads(max(1, int(msg.get("threads", 1))))
        layers = [l for l in msg["model"]["layers"] if l["type"] == "linear"]
        self.sizes = [layers[0]["in"]] + [l["out"] for l in layers]
        self.recipe = msg["recipe"]
        self.reset(msg["seed"])
        params = sum(w.numel() + b.numel() for w, b in self.params)
        return "closed", params

    def reset(self, seed):
        torch = self.torch
        g = torch.Generator().manual_seed(int(seed))
        self.params = []
        for i, o in zip(self.sizes, self.sizes[1:]):
            bound = 1.0 / i ** 0.5
            w = (torch.rand(i, o, generator=g) * 2 - 1) * bound  # (in, out), as effbench's Linear
            b = (torch.rand(o, generator=g) * 2 - 1) * bound
            self.params.append((w.requires_grad_(), b.requires_grad_()))
        flat = [t for p in self.params for t in p]
        r = self.recipe
        if r.get("optimizer") == "sgd":
            self.opt = torch.optim.SGD(flat, lr=r["learning_rate"], momentum=r.get("momentum", 0.0))
        else:
            self.opt = torch.optim.AdamW(flat, lr=r["learning_rate"], weight_decay=r.get("weight_decay", 0.0))

    def forward(self, x):
        for k, (w, b) in enumerate(self.params):
            x = x @ w + b
            if k + 1 < len(self.params):
                x = self.torch.relu(x)
        return x

    def step(self, x, y):
        torch = self.torch
        x = torch.frombuffer(bytearray(x), dtype=torch.float32).view(-1, self.sizes[0])
        y = torch.frombuffer(bytearray(y), dtype=torch.int64)
        loss = torch.nn.functional.cross_entropy(self.forward(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def predict(self, x, rows):
        torch = self.torch
        with torch.no_grad():
            x = torch.frombuffer(bytearray(x), dtype=torch.float32).view(rows, self.sizes[0])
            return self.forward(x).contiguous().numpy().tobytes()


class Loop:
    """The protocol, done: a lab changes nothing here."""

    def __init__(self, model, stdin=sys.stdin, stdout=sys.stdout):
        self.model = model
        self.lines, self.stdout = iter(stdin), stdout
        self.next_id = 0  # the runner's own request ids (fetch)
        self.busy_s = 0.0

    def send(self, obj):
        self.stdout.write(json.dumps(obj) + "\n")
        self.stdout.flush()

    def recv(self):
        for line in self.lines:
            if line.strip():
                return json.loads(line)
        raise SystemExit(0)  # effbench closed stdin

    def answer(self, msg):
        op = msg.get("op")
        try:
            handler = getattr(self, "op_" + str(op), None)
            if handler is None:
                raise ValueError("unknown op %r" % op)
            reply = handler(msg)
            reply.update({"v": PROTOCOL, "re": msg["id"], "ok": True})
        except Exception as e:  # effbench stops the run with this message
            log("%s failed: %r" % (op, e))
            reply = {"v": PROTOCOL, "re": msg.get("id"), "ok": False,
                     "error": {"code": type(e).__name__, "msg": str(e)}}
        self.send(reply)
        return op

    def run(self):
        while self.answer(self.recv()) != "shutdown":
            pass

    # ---- effbench's requests
    def op_hello(self, msg):
        return {"protocol": PROTOCOL, "minor": MINOR, "ops": ["train"], "runner": "torch-template 1.0",
                "vendor": "example",
                # The energy domain the training runs in: `cpu` is what effbench's own CPU
                # sensors meter (so `device` scope compares with a candle CPU baseline); say
                # "gpu:0" when the model runs on CUDA.
                "device": {"name": "host CPU (PyTorch)", "domain": "cpu"},
                "precisions": ["f32"], "telemetry": ["busy_s"]}

    def op_train_load(self, msg):
        self.train_samples = msg["train_samples"]
        self.batch = int(msg["recipe"].get("batch_size", 32))
        with open(msg["eval"]["path"], "rb") as f:
            self.eval_x = f.read()
        self.eval_rows = msg["eval"]["shape"][0]
        self.out_shape = [self.eval_rows] + msg["output"]["shape"][1:]
        division, params = self.model.load(msg)
        return {"division": division, "params": params, "precision": "f32"}

    def op_train(self, msg):
        """One repeat: batches of the recipe's size from a seeded shuffle until effbench says
        done. The reply carries only this runner's own counters: effbench counts the rest."""
        self.model.reset(msg["seed"])
        rng, order, steps = random.Random(msg["seed"]), list(range(self.train_samples)), 0
        while True:
            rng.shuffle(order)
            for s in range(0, len(order), self.batch):
                got = self.fetch(order[s:s + self.batch])
                if got is None:
                    return {"steps": steps, "busy_s": self.busy_s}
                t0 = time.perf_counter()
                self.model.step(*got)
                self.busy_s += time.perf_counter() - t0
                steps += 1

    def op_evaluate(self, msg):
        t0 = time.perf_counter()
        out = self.model.predict(self.eval_x, self.eval_rows)
        self.busy_s += time.perf_counter() - t0
        with open(msg["output"], "wb") as f:
            f.write(out)
        return {"output": {"path": msg["output"], "dtype": "float32", "shape": self.out_shape}}

    def op_mark(self, msg):
        return {"t_mono_ns": time.monotonic_ns()}

    def op_stats(self, msg):
        return {"busy_s": self.busy_s, "power": []}

    def op_flush(self, msg):
        return {}

    def op_unload(self, msg):
        return {}

    def op_shutdown(self, msg):
        return {}

    # ---- the runner's own request
    def fetch(self, indices):
        """(x bytes, y bytes) for `indices`, or None once effbench answers done. effbench may
        hold the fetch to send `evaluate` first: that is answered here."""
        self.next_id += 1
        rid = self.next_id
        self.send({"v": PROTOCOL, "id": rid, "op": "fetch", "indices": indices})
        while True:
            msg = self.recv()
            if "op" in msg:
                self.answer(msg)
                continue
            if msg.get("re") != rid or not msg.get("ok"):
                raise RuntimeError("unexpected reply to fetch %d: %.200r" % (rid, msg))
            if msg.get("done"):
                log("done (%s)" % msg.get("reason"))
                return None
            parts = []
            for key in ("x", "y"):
                with open(msg[key]["path"], "rb") as f:
                    parts.append(f.read())
                os.unlink(msg[key]["path"])
            return parts


def main(model):
    Loop(model).run()


if __name__ == "__main__":
    main(TorchMLP())
