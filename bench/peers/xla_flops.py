#!/usr/bin/env python3
"""Print XLA's cost-analysis FLOPs per sample for effbench's reference models:
the forward pass (inference, per query) and the training step (forward + backward,
and the same with the AdamW update), at effbench's shapes and batch sizes, with
effbench's own declared counts beside them when --effbench FILE is given.

What is counted: `jax.jit(f).lower(...).compile().cost_analysis()["flops"]`
of the compiled CPU executable, divided by the batch ("XLA"), and the same
count of the HLO before XLA's optimisation passes ("XLA HLO"). XLA's HloCostAnalysis
counts 2 FLOPs per multiply-add in dots and convolutions (convolutions over
the input positions actually read, not the zero padding), 1 per element for
other arithmetic, compares and selects, and puts exp/log/sqrt/rsqrt/tanh in
a separate "transcendentals" count, which is not added here.

Usage: python xla_flops.py [--json FILE] [--effbench FILE|-]
  --effbench FILE  effbench's counts (- reads stdin), as printed by
                   `cargo run -q -p effbench-models --example flops`
"""
import argparse
import json
import math
import os
import sys

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
ap.add_argument("--effbench", metavar="FILE",
                help="effbench's counts (JSON from the flops example); adds the ratio columns")
args = ap.parse_args()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (after the environment is set)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "float32")


# ------------------------------------------------- the models, as effbench builds them
# Shapes and layouts follow models/src (and jax_steps.py): Linear weight (out, in),
# conv weight OIHW, NCHW input, "same" padding, 2x2 max-pool, pre-LN transformer.
def linear(key, n_in, n_out):
    b = 1.0 / math.sqrt(n_in)
    kw, kb = jax.random.split(key)
    return {"w": jax.random.uniform(kw, (n_out, n_in), jnp.float32, -b, b),
            "b": jax.random.uniform(kb, (n_out,), jnp.float32, -b, b)}


def dense(p, x):
    return x @ p["w"].T + p["b"]


def mlp(sizes):
    def init(key):
        return [linear(k, a, b) for k, a, b in zip(jax.random.split(key, len(sizes) - 1), sizes, sizes[1:])]

    def forward(p, x):
        for i, layer in enumerate(p):
            x = dense(layer, x)
            x = jax.nn.relu(x) if i < len(p) - 1 else x
        return x
    return init, forward


def cnn():
    def init(key):
        k = jax.random.split(key, 4)
        conv = [{"w": jax.random.uniform(k[i], (o, c, 3, 3), jnp.float32, -0.1, 0.1),
                 "b": jnp.zeros((o,), jnp.float32)} for i, (c, o) in enumerate([(1, 16), (16, 32)])]
        return {"c": conv, "fc1": linear(k[2], 32 * 7 * 7, 64), "fc2": linear(k[3], 64, 10)}

    def forward(p, x):
        x = x.reshape(x.shape[0], 1, 28, 28)
        for c in p["c"]:
            x = jax.lax.conv_general_dilated(x, c["w"], (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
            x = jax.nn.relu(x + c["b"][None, :, None, None])
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return dense(p["fc2"], jax.nn.relu(dense(p["fc1"], x.reshape(x.shape[0], -1))))
    return init, forward


def layer_norm(p, x, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + eps) * p["g"] + p["b"]


def charlm(vocab=75, ctx=64, d=64, heads=4, blocks=2):
    ln = {"g": jnp.ones((d,)), "b": jnp.zeros((d,))}

    def init(key):
        k = iter(jax.random.split(key, 3 + 6 * blocks))
        p = {"tok": jax.random.normal(next(k), (vocab, d)), "pos": jax.random.normal(next(k), (ctx, d)),
             "blocks": [], "ln_f": dict(ln), "head": linear(next(k), d, vocab)}
        for _ in range(blocks):
            p["blocks"].append({"ln1": dict(ln), "ln2": dict(ln),
                                **{n: linear(next(k), d, d) for n in ("q", "k", "v", "o")},
                                "fc1": linear(next(k), d, 4 * d), "fc2": linear(next(k), 4 * d, d)})
        return p

    def attention(p, x):
        b, t, _ = x.shape
        split = lambda z: z.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (split(dense(p[n], x)) for n in ("q", "k", "v"))
        mask = jnp.where(jnp.tril(jnp.ones((t, t), bool)), 0.0, -1e9)  # added, as effbench does
        att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) * (1 / math.sqrt(d // heads)) + mask, axis=-1)
        return dense(p["o"], (att @ v).transpose(0, 2, 1, 3).reshape(b, t, d))

    def forward(p, x):
        h = p["tok"][x] + p["pos"][None, : x.shape[1]]
        for blk in p["blocks"]:
            h = h + attention(blk, layer_norm(blk["ln1"], h))
            h = h + dense(blk["fc2"], jax.nn.relu(dense(blk["fc1"], layer_norm(blk["ln2"], h))))
        return dense(p["head"], layer_norm(p["ln_f"], h))
    return init, forward


def cross_entropy(logits, y):
    logp = jax.nn.log_softmax(logits.reshape(-1, logits.shape[-1]), axis=-1)
    return -jnp.take_along_axis(logp, y.reshape(-1, 1), axis=-1).mean()


def mse(out, x):
    return ((out - x) ** 2).mean()


AE = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
# (effbench model, factory, loss, input maker, training batch of the baseline recipe)
MODELS = [
    ("digits-mlp", lambda: mlp([64, 128, 10]), cross_entropy, ("f", 64, 10), 32),
    ("fmnist-mlp", lambda: mlp([784, 128, 10]), cross_entropy, ("f", 784, 10), 64),
    ("fmnist-cnn", cnn, cross_entropy, ("f", 784, 10), 64),
    ("charlm-austen", charlm, cross_entropy, ("ids", 64, 75), 32),
    ("ae-machine", lambda: mlp(AE), mse, ("ae", 640, 0), 64),
]
INFER_BATCHES = [1, 250]


def batch(kind, key, b):
    shape, n = kind[1], kind[2]
    kx, ky = jax.random.split(key)
    if kind[0] == "ids":
        return jax.random.randint(kx, (b, shape), 0, n), jax.random.randint(ky, (b, shape), 0, n)
    x = jax.random.uniform(kx, (b, shape))
    return x, (x if kind[0] == "ae" else jax.random.randint(ky, (b,), 0, n))


def flops(f, *a):
    """(compiled, unoptimised) FLOPs: the compiled executable's count, and the count of the
    HLO JAX emitted, before XLA's passes (fusion may duplicate cheap ops into several
    fusions, which the compiled count then counts more than once)."""
    lowered = jax.jit(f).lower(*a)
    costs = [lowered.compile().cost_analysis(), lowered.cost_analysis()]
    costs = [c[0] if isinstance(c, list) else c for c in costs]  # lists in older JAX releases
    return costs[0]["flops"], costs[1]["flops"]


def measure(name, factory, loss_fn, kind, train_batch):
    init, forward = factory()
    params = init(jax.random.PRNGKey(0))
    row = {"model": name, "train_batch": train_batch, "jax_version": jax.__version__}
    for b in INFER_BATCHES:
        x, _ = batch(kind, jax.random.PRNGKey(1), b)
        row[f"forward_b{b}"], row[f"forward_b{b}_hlo"] = (n / b for n in flops(forward, params, x))
    x, y = batch(kind, jax.random.PRNGKey(2), train_batch)
    loss = lambda p, x, y: loss_fn(forward(p, x), y)  # noqa: E731
    row["grad"], row["grad_hlo"] = (n / train_batch for n in flops(jax.value_and_grad(loss), params, x, y))
    opt = optax.adamw(1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)

    def step(p, s, x, y):
        l, g = jax.value_and_grad(loss)(p, x, y)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, l
    row["step_adamw"] = flops(step, params, opt.init(params), x, y)[0] / train_batch
    row["params"] = sum(v.size for v in jax.tree_util.tree_leaves(params))
    return row


def load_effbench(path):
    """{workload id: row} from the flops example's JSON (flops_per_sample: per sample, not token)."""
    if path == "-":
        return {w["id"]: w for w in json.load(sys.stdin)}
    with open(path) as f:
        return {w["id"]: w for w in json.load(f)}


def table(rows, eff):
    head = f"{'workload':<26}{'effbench':>14}{'XLA':>14}{'ratio':>8}{'XLA HLO':>14}{'ratio':>8}  XLA counts"
    print(f"\nXLA cost analysis, JAX {jax.__version__}, FLOPs per sample (charlm: per 64-token window)")
    print(head if eff else f"{'model':<15}{'fwd b1':>13}{'fwd b250':>13}{'fwd+bwd':>13}{'+AdamW':>13}")
    for r in rows:
        if not eff:
            print(f"{r['model']:<15}{r['forward_b1']:>13.0f}{r['forward_b250']:>13.0f}"
                  f"{r['grad']:>13.0f}{r['step_adamw']:>13.0f}")
            continue
        pairs = [(f"{r['model']}-train", "grad", f"fwd+bwd, batch {r['train_batch']}")]
        pairs += [(f"{r['model']}-infer" + ("" if b == 1 else f"-b{b}"), f"forward_b{b}", f"forward, batch {b}")
                  for b in INFER_BATCHES]
        for wid, key, what in pairs:
            w = eff.get(wid)
            if w is None:
                continue
            mine, xla, hlo = w["flops_per_sample"], r[key], r[f"{key}_hlo"]
            print(f"{wid:<26}{mine:>14.0f}{xla:>14.0f}{mine / xla:>8.3f}{hlo:>14.0f}{mine / hlo:>8.3f}  {what}")
        opt = r["step_adamw"] - r["grad"]
        print(f"{'  (AdamW, not counted)':<26}{'':>14}{opt:>14.0f}{'':>30}  "
              f"{opt * r['train_batch'] / r['params']:.1f} per parameter per step")


def main():
    eff = load_effbench(args.effbench) if args.effbench else None  # read first: fail fast
    rows = [measure(*m) for m in MODELS]
    table(rows, eff)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
