#!/usr/bin/env python3
"""Time one training step (forward + backward + AdamW update) of effbench's
reference models in JAX on CPU, float32, as a peer for candle's step time
(`cargo bench -p effbench --bench train_step`).

Usage: python jax_steps.py [--threads 1|2] [--models a,b] [--json FILE]
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

MODELS = ["digits-mlp", "fmnist-mlp", "fmnist-cnn", "charlm-austen", "ae-machine"]

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--threads", type=int, choices=[1, 2], default=1,
                help="CPU threads XLA may use (pinned with sched_setaffinity)")
ap.add_argument("--models", default=",".join(MODELS),
                help="comma-separated subset of: " + ", ".join(MODELS))
ap.add_argument("--json", metavar="FILE",
                help="write results as JSON; rows already in FILE for other "
                     "(model, batch, threads) are kept, so runs with --threads 1 "
                     "and --threads 2 can share one file")
ap.add_argument("--min-seconds", type=float, default=2.0,
                help="time at least this long per model (default 2)")
ap.add_argument("--min-steps", type=int, default=20)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()
chosen = [m.strip() for m in args.models.split(",") if m.strip()]
for m in chosen:
    if m not in MODELS:
        ap.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")

# XLA reads XLA_FLAGS and sizes its thread pools once, when the backend starts,
# so both must be set before jax is imported (which is why the import is below).
# Affinity is inherited by every thread XLA spawns, and XLA sizes its pool from
# the schedulable CPUs, so pinning bounds the threads even where a flag is ignored.
cpus = sorted(os.sched_getaffinity(0))
if len(cpus) < args.threads:
    sys.exit(f"--threads {args.threads} asked, but only CPUs {cpus} are available")
os.sched_setaffinity(0, cpus[:args.threads])
if args.threads == 1:
    # The first flag stops Eigen's multi-threaded contractions; the bare second
    # token is the conventional companion from JAX's issue tracker (XLA ignores it).
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (must follow the environment set-up above)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "float32")  # plain f32, like candle


# ---------------------------------------------------------------- parameters
# Layouts follow candle-nn so parameter shapes match ours one-to-one: Linear
# weight is (out, in) and applied as x @ W.T; conv weight is OIHW.
# Init is uniform(+-1/sqrt(fan_in)); the values do not change the step's cost.
def linear(key, n_in, n_out):
    kw, kb = jax.random.split(key)
    bound = 1.0 / math.sqrt(n_in)
    return {"w": jax.random.uniform(kw, (n_out, n_in), jnp.float32, -bound, bound),
            "b": jax.random.uniform(kb, (n_out,), jnp.float32, -bound, bound)}


def conv(key, c_in, c_out, k=3):
    kw, kb = jax.random.split(key)
    bound = 1.0 / math.sqrt(c_in * k * k)
    return {"w": jax.random.uniform(kw, (c_out, c_in, k, k), jnp.float32, -bound, bound),
            "b": jax.random.uniform(kb, (c_out,), jnp.float32, -bound, bound)}


def layer_norm(d):
    return {"g": jnp.ones((d,), jnp.float32), "b": jnp.zeros((d,), jnp.float32)}


def apply_linear(p, x):
    return x @ p["w"].T + p["b"]


def apply_ln(p, x, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + eps) * p["g"] + p["b"]


def cross_entropy(logits, labels):
    # Softmax cross-entropy on integer labels, averaged over every row.
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, labels[..., None], axis=-1).mean()


# ---------------------------------------------------------------- models
# Each model: init(key) -> params, loss(params, x, y) -> scalar, and
# make_batch(key, batch) -> (x, y), with x/y shaped as our Rust benches feed them.
def mlp_model(n_in, hidden, n_out):
    def init(key):
        k1, k2 = jax.random.split(key)
        return [linear(k1, n_in, hidden), linear(k2, hidden, n_out)]

    def loss(p, x, y):
        return cross_entropy(apply_linear(p[1], jax.nn.relu(apply_linear(p[0], x))), y)

    def make_batch(key, b):
        kx, ky = jax.random.split(key)
        return jax.random.normal(kx, (b, n_in)), jax.random.randint(ky, (b,), 0, n_out)
    return init, loss, make_batch


def cnn_model():
    def init(key):
        k = jax.random.split(key, 4)
        return {"c1": conv(k[0], 1, 16), "c2": conv(k[1], 16, 32),
                "fc1": linear(k[2], 32 * 7 * 7, 64), "fc2": linear(k[3], 64, 10)}

    def conv_relu_pool(p, x):
        x = jax.lax.conv_general_dilated(x, p["w"], (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        x = jax.nn.relu(x + p["b"][None, :, None, None])
        # 2x2 max-pool, stride 2 (28 -> 14 -> 7).
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss(p, x, y):
        x = conv_relu_pool(p["c2"], conv_relu_pool(p["c1"], x))
        x = x.reshape(x.shape[0], -1)  # NCHW flatten -> 1568, as candle's flatten_from(1)
        return cross_entropy(apply_linear(p["fc2"], jax.nn.relu(apply_linear(p["fc1"], x))), y)

    def make_batch(key, b):
        kx, ky = jax.random.split(key)
        return jax.random.normal(kx, (b, 1, 28, 28)), jax.random.randint(ky, (b,), 0, 10)
    return init, loss, make_batch


def charlm_model(vocab=80, ctx=64, d=64, heads=4, blocks=2, d_mlp=256):
    def init(key):
        k = iter(jax.random.split(key, 3 + 6 * blocks))
        p = {"tok": jax.random.normal(next(k), (vocab, d)),
             "pos": jax.random.normal(next(k), (ctx, d)),
             "blocks": [], "ln_f": layer_norm(d), "head": linear(next(k), d, vocab)}
        for _ in range(blocks):
            p["blocks"].append({"ln1": layer_norm(d), "ln2": layer_norm(d),
                                **{n: linear(next(k), d, d) for n in ("q", "k", "v", "o")},
                                "up": linear(next(k), d, d_mlp), "down": linear(next(k), d_mlp, d)})
        return p

    def attention(p, x):
        b, t, _ = x.shape
        hd = d // heads

        def split(z):  # (B, T, D) -> (B, H, T, hd)
            return z.reshape(b, t, heads, hd).transpose(0, 2, 1, 3)
        q, k, v = (split(apply_linear(p[n], x)) for n in ("q", "k", "v"))
        scores = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(hd)
        causal = jnp.tril(jnp.ones((t, t), bool))
        scores = jnp.where(causal, scores, -jnp.inf)  # diagonal is always kept, so no row is all -inf
        out = jax.nn.softmax(scores, axis=-1) @ v
        return apply_linear(p["o"], out.transpose(0, 2, 1, 3).reshape(b, t, d))

    def loss(p, x, y):
        h = p["tok"][x] + p["pos"][None, : x.shape[1]]
        for blk in p["blocks"]:  # pre-LayerNorm residual blocks
            h = h + attention(blk, apply_ln(blk["ln1"], h))
            h = h + apply_linear(blk["down"], jax.nn.relu(apply_linear(blk["up"], apply_ln(blk["ln2"], h))))
        logits = apply_linear(p["head"], apply_ln(p["ln_f"], h))
        return cross_entropy(logits, y)  # mean over all B*T next-char positions

    def make_batch(key, b):
        kx, ky = jax.random.split(key)
        return (jax.random.randint(kx, (b, ctx), 0, vocab),
                jax.random.randint(ky, (b, ctx), 0, vocab))
    return init, loss, make_batch


def ae_model(dims=(640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)):
    def init(key):
        keys = jax.random.split(key, len(dims) - 1)
        return [linear(k, a, b) for k, a, b in zip(keys, dims[:-1], dims[1:])]

    def loss(p, x, _y):
        h = x
        for i, layer in enumerate(p):
            h = apply_linear(layer, h)
            if i < len(p) - 1:  # ReLU everywhere but the 128->640 output layer
                h = jax.nn.relu(h)
        return ((h - x) ** 2).mean()  # reconstruction MSE

    def make_batch(key, b):
        x = jax.random.normal(key, (b, dims[0]))
        return x, x
    return init, loss, make_batch


# (name, batch, model factory, AdamW learning rate)
CASES = [
    ("digits-mlp", 32, lambda: mlp_model(64, 128, 10), 1e-3),
    ("fmnist-mlp", 64, lambda: mlp_model(784, 128, 10), 1e-3),
    ("fmnist-mlp", 128, lambda: mlp_model(784, 128, 10), 1e-3),
    ("fmnist-cnn", 64, cnn_model, 1e-3),
    ("charlm-austen", 32, charlm_model, 3e-3),
    ("ae-machine", 64, ae_model, 1e-3),
]
N_BATCHES = 4  # a small ring of prepared batches, so no step sees data creation


def bench_case(name, batch, factory, lr, key):
    init, loss, make_batch = factory()
    k_init, k_data = jax.random.split(key)
    params = init(k_init)
    # candle-nn's ParamsAdamW defaults; like candle, decay applies to every parameter.
    opt = optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)
    opt_state = opt.init(params)
    batches = [make_batch(k, batch) for k in jax.random.split(k_data, N_BATCHES)]

    def step(params, opt_state, x, y):
        l, grads = jax.value_and_grad(loss)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, l
    # Donating params/opt_state lets XLA update them in place, as candle does.
    step = jax.jit(step, donate_argnums=(0, 1))

    def run(n, timings=None):
        nonlocal params, opt_state
        for i in range(n):
            x, y = batches[i % N_BATCHES]
            t0 = time.perf_counter()
            params, opt_state, l = step(params, opt_state, x, y)
            # JAX dispatches asynchronously: wait for the whole step to finish.
            jax.block_until_ready((params, opt_state, l))
            if timings is not None:
                timings.append(time.perf_counter() - t0)
        return l

    run(1)  # compile
    warm = []
    run(10, warm)  # warm caches, then size the timed run from the warm-up
    per_step = statistics.median(warm)
    steps = max(args.min_steps, math.ceil(args.min_seconds / per_step))
    times = []
    cpu0 = time.process_time()  # every thread of the process: XLA's pool included
    final_loss = run(steps, times)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / steps
    if not bool(jnp.isfinite(final_loss)):
        sys.exit(f"{name}: loss is not finite ({final_loss})")
    ms = sorted(t * 1e3 for t in times)
    q = statistics.quantiles(ms, n=10)  # q[0] = p10, q[8] = p90
    return {"model": name, "batch": batch, "threads": args.threads,
            "median_ms": round(statistics.median(ms), 4), "p10_ms": round(q[0], 4),
            "p90_ms": round(q[8], 4), "cpu_ms": round(cpu_ms, 4), "steps": steps, "jax_version": jax.__version__}


def main():
    rows = []
    key = jax.random.PRNGKey(args.seed)
    for i, (name, batch, factory, lr) in enumerate(CASES):
        if name in chosen:
            rows.append(bench_case(name, batch, factory, lr, jax.random.fold_in(key, i)))
            print(f"  done {name} b={batch}", file=sys.stderr, flush=True)

    print(f"\nJAX {jax.__version__} on {jax.devices()[0].platform}, threads={args.threads}, "
          f"loadavg {open('/proc/loadavg').read().split()[:3]}")
    print(f"{'model':<15}{'batch':>6}{'threads':>8}{'median ms':>11}{'p10 ms':>9}{'p90 ms':>9}{'steps':>7}")
    for r in rows:
        print(f"{r['model']:<15}{r['batch']:>6}{r['threads']:>8}{r['median_ms']:>11.3f}"
              f"{r['p10_ms']:>9.3f}{r['p90_ms']:>9.3f}{r['steps']:>7}")

    if args.json:
        old = []
        if os.path.exists(args.json):
            with open(args.json) as f:
                old = json.load(f)
        new_keys = {(r["model"], r["batch"], r["threads"]) for r in rows}
        merged = [r for r in old if (r["model"], r["batch"], r["threads"]) not in new_keys] + rows
        merged.sort(key=lambda r: (r["threads"], MODELS.index(r["model"]), r["batch"]))
        with open(args.json, "w") as f:
            json.dump(merged, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
