"""effbench's five reference training models in JAX, shaped and initialised as candle's.

Each model is a list of parameter specs in candle's creation order (models/src/*.rs), so the
names, shapes and count match `Params` one to one:

- Linear (layers.rs): weight (in, out) applied as x W + b; weight and bias U(+-1/sqrt(in)).
- Conv2d (layers.rs): weight OIHW, k x k, stride 1, padding k/2; weight and bias
  U(+-1/sqrt(c_in k k)).
- LayerNorm (layers.rs): gain 1, shift 0, eps 1e-5 over the last dimension.
- Embedding (layers.rs): U(+-sqrt(3)) (unit variance, candle's stand-in for N(0, 1)).

The distributions are candle's; the values are not (candle draws from ChaCha8 streams, these
from JAX's threefry keys), so the same seed gives other weights than candle's.

This module imports jax: the runner imports it only after it has set XLA's thread flags.
"""

import math

import jax
import jax.numpy as jnp

# candle computes in plain f32; so does XLA on the CPU, and this keeps a GPU from using TF32.
jax.config.update("jax_default_matmul_precision", "float32")

# Workload id -> model. CHARLM is models/src/workload.rs's CHARLM config.
CHARLM = {"vocab": 75, "context": 64, "d": 64, "heads": 4, "blocks": 2}
AE_SIZES = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]  # autoencoder.rs


class Net:
    """A model: parameter specs, a forward pass and the loss kind, plus the tensors the
    contract serves for it (x/y dtype and the shape of one row)."""

    def __init__(self, name, specs, forward, loss, x_dtype, x_row, y_row, out_row):
        self.name = name
        self.specs = specs  # [(name, shape, init, bound)], candle's order
        self.forward = forward  # (params, x) -> output
        self.loss = loss  # "ce" | "mse"
        self.x_dtype = x_dtype  # "float32" | "int64"
        self.x_row = x_row  # shape of one input row
        self.y_row = y_row  # shape of one target row; None: target = input (autoencoder)
        self.out_row = out_row  # shape of one output row

    def count(self):
        return sum(math.prod(shape) for _, shape, _, _ in self.specs)

    def init(self, key):
        """Fresh parameters: a dict in spec order, one key per parameter (fold_in by position)."""
        params = {}
        for i, (name, shape, kind, bound) in enumerate(self.specs):
            if kind == "uniform":
                k = jax.random.fold_in(key, i)
                params[name] = jax.random.uniform(k, shape, jnp.float32, -bound, bound)
            else:  # a constant
                params[name] = jnp.full(shape, bound, jnp.float32)
        return params


def linear_specs(name, d_in, d_out):
    bound = 1.0 / math.sqrt(d_in)
    return [(f"{name}.weight", (d_in, d_out), "uniform", bound), (f"{name}.bias", (d_out,), "uniform", bound)]


def conv_specs(name, c_in, c_out, k=3):
    bound = 1.0 / math.sqrt(c_in * k * k)
    return [(f"{name}.weight", (c_out, c_in, k, k), "uniform", bound), (f"{name}.bias", (c_out,), "uniform", bound)]


def ln_specs(name, d):
    return [(f"{name}.weight", (d,), "constant", 1.0), (f"{name}.bias", (d,), "constant", 0.0)]


def linear(p, name, x):
    return x @ p[f"{name}.weight"] + p[f"{name}.bias"]


def layer_norm(p, name, x, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # biased variance, as layer_norm_slow
    return (x - mu) / jnp.sqrt(var + eps) * p[f"{name}.weight"] + p[f"{name}.bias"]


def mlp(name, sizes, loss):
    specs = [s for i in range(len(sizes) - 1) for s in linear_specs(f"fc{i}", sizes[i], sizes[i + 1])]
    last = len(sizes) - 2

    def forward(p, x):
        for i in range(last + 1):
            x = linear(p, f"fc{i}", x)
            if i < last:
                x = jax.nn.relu(x)
        return x
    y_row = () if loss == "ce" else None
    return Net(name, specs, forward, loss, "float32", (sizes[0],), y_row, (sizes[-1],))


def max_pool2x2(x):
    """2x2 max pool, stride 2, as layers::max_pool2x2 (a reshape and two max reductions)."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


POOL = max_pool2x2


def cnn(side=28, classes=10):
    specs = (conv_specs("conv1", 1, 16) + conv_specs("conv2", 16, 32)
             + linear_specs("fc1", 32 * (side // 4) ** 2, 64) + linear_specs("fc2", 64, classes))

    def stage(p, name, x):
        x = jax.lax.conv_general_dilated(x, p[f"{name}.weight"], (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        x = jax.nn.relu(x + p[f"{name}.bias"][None, :, None, None])
        return POOL(x)

    def forward(p, x):
        x = x.reshape(x.shape[0], 1, side, side)  # as cnn.rs: the flat 784 row is 1x28x28
        x = stage(p, "conv2", stage(p, "conv1", x))
        x = x.reshape(x.shape[0], -1)  # NCHW flatten, as flatten_from(1)
        return linear(p, "fc2", jax.nn.relu(linear(p, "fc1", x)))
    return Net("fmnist-cnn", specs, forward, "ce", "float32", (side * side,), (), (classes,))


def charlm(vocab, context, d, heads, blocks):
    specs = [("tok.weight", (vocab, d), "uniform", math.sqrt(3.0)),
             ("pos.weight", (context, d), "uniform", math.sqrt(3.0))]
    for i in range(blocks):
        p = f"block{i}"
        specs += ln_specs(f"{p}.ln1", d)
        for n in ("q", "k", "v", "o"):
            specs += linear_specs(f"{p}.{n}", d, d)
        specs += ln_specs(f"{p}.ln2", d) + linear_specs(f"{p}.fc1", d, 4 * d) + linear_specs(f"{p}.fc2", 4 * d, d)
    specs += ln_specs("ln_f", d) + linear_specs("head", d, vocab)
    # charlm.rs adds -1e9 above the diagonal before the softmax (not -inf).
    row, col = jnp.arange(context)[:, None], jnp.arange(context)[None, :]
    mask = jnp.where(col > row, -1e9, 0.0).astype(jnp.float32)

    def attention(p, name, x):
        b, t, _ = x.shape
        dh = d // heads

        def split(y):  # (b, t, d) -> (b, h, t, dh)
            return y.reshape(b, t, heads, dh).transpose(0, 2, 1, 3)
        q, k, v = (split(linear(p, f"{name}.{n}", x)) for n in ("q", "k", "v"))
        scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(dh)) + mask[:t, :t]
        y = jax.nn.softmax(scores, axis=-1) @ v
        return linear(p, f"{name}.o", y.transpose(0, 2, 1, 3).reshape(b, t, d))

    def forward(p, ids):
        t = ids.shape[1]
        h = p["tok.weight"][ids] + p["pos.weight"][:t]
        for i in range(blocks):
            n = f"block{i}"
            h = h + attention(p, n, layer_norm(p, f"{n}.ln1", h))
            h = h + linear(p, f"{n}.fc2", jax.nn.relu(linear(p, f"{n}.fc1", layer_norm(p, f"{n}.ln2", h))))
        return linear(p, "head", layer_norm(p, "ln_f", h))
    return Net("charlm-austen", specs, forward, "ce", "int64", (context,), (context,), (context, vocab))


def build(workload):
    """The reference model of a training workload id; KeyError names the ones known."""
    factories = {
        "digits-mlp-train": lambda: mlp("digits-mlp", [64, 128, 10], "ce"),
        "fmnist-mlp-train": lambda: mlp("fmnist-mlp", [784, 128, 10], "ce"),
        "fmnist-cnn-train": cnn,
        "charlm-austen-train": lambda: charlm(**CHARLM),
        "ae-machine-train": lambda: mlp("ae-machine", AE_SIZES, "mse"),
    }
    if workload not in factories:
        raise KeyError("the JAX runner has no model for workload %r; it knows %s"
                       % (workload, ", ".join(sorted(factories))))
    return factories[workload]()


def row_losses(net, out, x, y):
    """Per-row loss: cross-entropy (mean over a row's positions for charlm) or the row's mean
    squared reconstruction error. Their mean over the rows is candle's batch loss
    (candle_nn::loss::cross_entropy over all rows/positions, loss::mse over all values)."""
    if net.loss == "mse":
        return ((out - x) ** 2).reshape(out.shape[0], -1).mean(axis=1)
    logp = jax.nn.log_softmax(out, axis=-1)
    nll = -jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    return nll.reshape(nll.shape[0], -1).mean(axis=1)
