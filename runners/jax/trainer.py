"""The training loop of models/src/train.rs in JAX + optax, with the data served by a callback.

Recipe semantics (models/src/recipe.rs, train.rs, adamw.rs):
- AdamW as candle_nn's ParamsAdamW defaults (beta1 0.9, beta2 0.999, eps 1e-8 outside the
  square root, bias-corrected moments) with decoupled weight decay on every parameter, written
  as adamw.rs's fused update: m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
  w <- w (1 - lr wd) - lr (m s_m)/(sqrt(v s_v) + eps), with the bias corrections
  s_m = 1/(1-b1^t), s_v = 1/(1-b2^t) computed in f64 and then rounded to f32, b1 and b2
  rounded to f32 in the moments, as adamw.rs does. Not optax.adamw, whose roundings differ
  (its 1 - b2 in f64, its 1 - b2^t from b2 in f32): its first update is 1.3e-5 relative off
  candle's (0.04950033 vs 0.04949966 after one step in test_adamw_is_adamw_rs's problem).
- SGD as train.rs's MomentumSgd: v <- momentum v + g; w <- w - lr v (optax.trace); no decay.
- The learning rate is Recipe::lr_at(samples trained before the step).
- Data selection: `full` (every index in 0..train_samples) or `random-subset` (ceil(fraction n)
  indices, at least 1, sorted); `pruned` is refused (it needs the training labels up front).
- Each epoch is a fresh shuffle of the pool, cut into batches of batch_size; the last batch of
  an epoch may be smaller. It is padded to batch_size and the padded rows masked out of the
  loss, so the step compiles once.
- Precision f32 only, as candle's reference loop.

Randomness: JAX keys for the weights, numpy's PCG64 for the host-side shuffles, both derived
from the seed with the stream numbers of models/src/rng.rs (Init 1, Shuffle 2, Selection 3).
candle's ChaCha8 streams cannot be reproduced, so equal seeds do not give equal runs.
"""

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nets

INIT, SHUFFLE, SELECTION = 1, 2, 3
EVAL_CHUNK = {"charlm-austen": 128}  # rows per compiled eval call (task.rs: 128 windows, else 500)


class RecipeError(ValueError):
    pass


class Recipe:
    """The fields of models/src/recipe.rs's Recipe (as effbench serialises it), with its
    defaults; unknown fields are ignored (the protocol's rule)."""

    def __init__(self, d):
        if not isinstance(d, dict):
            raise RecipeError("recipe must be an object, got %r" % (d,))
        self.name = d.get("name", "?")
        self.optimizer = d.get("optimizer", "adamw")
        self.lr = float(d.get("learning_rate", 1e-3))
        self.weight_decay = float(d.get("weight_decay", 0.01))
        self.momentum = float(d.get("momentum", 0.0))
        self.batch_size = int(d.get("batch_size", 64))
        self.precision = d.get("precision", "f32")
        s = d.get("schedule") or {}
        self.kind = s.get("kind", "constant")
        self.warmup = int(s.get("warmup_samples", 0))
        self.decay = int(s.get("decay_samples", 0))
        self.floor = float(s.get("min_lr_fraction", 0.0))
        data = d.get("data") or {}
        self.selection = data.get("selection", "full")
        self.fraction = float(data.get("fraction", 1.0))
        self.check()

    def check(self):
        bad = []
        if self.optimizer not in ("adamw", "sgd"):
            bad.append("optimizer %r (adamw or sgd)" % self.optimizer)
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad.append("learning_rate %r" % self.lr)
        if not 1 <= self.batch_size <= 1 << 20:
            bad.append("batch_size %r" % self.batch_size)
        if self.precision != "f32":
            bad.append("precision %r (the JAX runner computes in f32 only)" % self.precision)
        if self.kind not in ("constant", "cosine", "step") or (self.kind != "constant" and self.decay <= 0):
            bad.append("schedule %r with decay_samples %r" % (self.kind, self.decay))
        if self.selection == "pruned":
            bad.append("data selection \"pruned\" (not supported: pruning by class centroid needs every "
                       "training sample and label before training, which the runner would have to fetch)")
        elif self.selection not in ("full", "random-subset") or not 0 < self.fraction <= 1:
            bad.append("data selection %r with fraction %r" % (self.selection, self.fraction))
        if bad:
            raise RecipeError("recipe %r: unsupported %s" % (self.name, "; ".join(bad)))

    def lr_at(self, samples):
        """Recipe::lr_at: linear warm-up, then constant, cosine to a floor, or step decay."""
        if samples < self.warmup:
            return self.lr * (samples + 1) / self.warmup
        t = samples - self.warmup
        if self.kind == "cosine":
            p = min(t / self.decay, 1.0)
            return self.lr * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * p)))
        if self.kind == "step":
            return self.lr * self.floor ** (t // self.decay)
        return self.lr


def host_rng(seed, stream):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream])))


def select(recipe, n, seed):
    """train.rs's select: the indices the recipe keeps, in index order."""
    if recipe.selection == "full":
        return np.arange(n, dtype=np.int64)
    keep = min(max(math.ceil(recipe.fraction * n), 1), n)
    return np.sort(host_rng(seed, SELECTION).permutation(n)[:keep]).astype(np.int64)


B1, B2, EPS = 0.9, 0.999, 1e-8  # candle_nn::ParamsAdamW::default()


class AdamW:
    """adamw.rs's FusedAdamW over a pytree; `hyper(step, lr)` gives its per-step scalars."""

    def __init__(self, weight_decay):
        self.wd = weight_decay

    def init(self, params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return {"m": zeros, "v": jax.tree_util.tree_map(jnp.zeros_like, params)}

    def hyper(self, t, lr):
        return np.array([lr, 1.0 - lr * self.wd, 1.0 / (1.0 - B1 ** t), 1.0 / (1.0 - B2 ** t)], np.float32)

    @staticmethod
    def apply(params, state, grads, hyper):
        lr, decay, scale_m, scale_v = hyper[0], hyper[1], hyper[2], hyper[3]
        b1, b2, eps = jnp.float32(B1), jnp.float32(B2), jnp.float32(EPS)
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], grads)
        params = jax.tree_util.tree_map(
            lambda w, m, v: w * decay - lr * ((m * scale_m) / (jnp.sqrt(v * scale_v) + eps)), params, m, v)
        return params, {"m": m, "v": v}


class MomentumSgd:
    """train.rs's MomentumSgd: optax.trace (v <- momentum v + g), then w <- w - lr v."""

    def __init__(self, momentum):
        self.tx = optax.trace(decay=momentum, nesterov=False)

    def init(self, params):
        return self.tx.init(params)

    def hyper(self, t, lr):
        return np.array([lr, 0.0, 0.0, 0.0], np.float32)

    def apply(self, params, state, grads, hyper):
        v, state = self.tx.update(grads, state, params)
        return jax.tree_util.tree_map(lambda w, v: w - hyper[0] * v, params, v), state


def optimizer(recipe):
    if recipe.optimizer == "adamw":
        return AdamW(recipe.weight_decay)
    return MomentumSgd(recipe.momentum)


class Trainer:
    """One workload's model, optimizer and compiled step/eval, reused across repeats."""

    def __init__(self, workload, recipe, train_samples):
        self.net = nets.build(workload)
        self.recipe = recipe
        self.train_samples = int(train_samples)
        if self.train_samples < 1:
            raise ValueError("train_samples must be at least 1, got %r" % (train_samples,))
        self.tx = optimizer(recipe)
        self.busy_s = 0.0
        self.params = None
        net, tx = self.net, self.tx

        def loss_fn(params, x, y, mask):
            r = nets.row_losses(net, net.forward(params, x), x, y)
            return jnp.sum(r * mask) / jnp.sum(mask)

        def step(params, opt_state, x, y, mask, hyper):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y, mask)
            params, opt_state = tx.apply(params, opt_state, grads, hyper)
            return params, opt_state, loss
        # Donating params and moments lets XLA update them in place, as candle does.
        self._step = jax.jit(step, donate_argnums=(0, 1))
        self._forward = jax.jit(net.forward)
        # One compile for all the initial values rather than one per shape (fmnist-mlp, under
        # load, JAX_LOG_COMPILES: 6.7 s jitted against 7.6 s for the four eager ones).
        self._init = jax.jit(net.init)
        self._opt_init = jax.jit(self.tx.init)

    def start(self, seed):
        """Fresh weights and optimizer state for a repeat."""
        key = jax.random.fold_in(jax.random.PRNGKey(seed), INIT)
        self.params = self._init(key)
        self.opt_state = self._opt_init(self.params)
        self.t = 0  # optimizer steps taken

    def warm(self, eval_x):
        """Compile the step and the eval pass on `eval_x` (outside any measured window)."""
        b = self.recipe.batch_size
        x = np.zeros((b,) + self.net.x_row, self.net.x_dtype)
        y = None if self.net.y_row is None else np.zeros((b,) + self.net.y_row, np.int64)
        self.start(0)
        self.step(x, y, 1.0e-9)
        self.output(eval_x)
        self.params = None

    def step(self, x, y, lr):
        """One step on the rows of x (fewer than batch_size: padded and masked); waits for it."""
        t0 = time.perf_counter()
        b, n = self.recipe.batch_size, x.shape[0]
        mask = np.zeros(b, np.float32)
        mask[:n] = 1.0
        if n < b:
            x = np.concatenate([x, np.zeros((b - n,) + x.shape[1:], x.dtype)])
            if y is not None:
                y = np.concatenate([y, np.zeros((b - n,) + y.shape[1:], y.dtype)])
        if y is None:
            y = np.zeros((b,), np.int64)  # unused by the autoencoder's loss
        self.t += 1
        hyper = self.tx.hyper(self.t, lr)
        self.params, self.opt_state, loss = self._step(self.params, self.opt_state, x, y, mask, hyper)
        loss = float(loss)  # blocks until the step is done
        self.busy_s += time.perf_counter() - t0
        return loss

    def output(self, x):
        """The model's outputs on every row of x, in fixed-size chunks (one compile)."""
        t0 = time.perf_counter()
        chunk = min(EVAL_CHUNK.get(self.net.name, 500), x.shape[0])
        outs = []
        for s in range(0, x.shape[0], chunk):
            part = x[s:s + chunk]
            n = part.shape[0]
            if n < chunk:
                part = np.concatenate([part, np.zeros((chunk - n,) + part.shape[1:], part.dtype)])
            outs.append(np.asarray(self._forward(self.params, part))[:n])
        out = np.ascontiguousarray(np.concatenate(outs), dtype="<f4")
        self.busy_s += time.perf_counter() - t0
        return out

    def train(self, seed, source, every=0, cap=0, max_fetch=0):
        """train.rs's epoch loop. `source.ask(indices)` asks for the rows of the next chunk of
        batches; `source.take()` returns (x, y) for the chunk asked first and not yet taken, or
        None when the trainer must stop (effbench said done). A plain function `fetch(indices)`
        may stand for a source: it is called at take. Returns the steps taken.

        Whole batches are fetched together, up to `max_fetch` rows, but never past an
        evaluation (the next multiple of `every` samples served, effbench's rule) or the `cap`:
        the batch that reaches one ends the chunk, so effbench evaluates after the same batch
        the candle loop would, while a fetch round trip is paid once per many steps instead of
        once per step. The batches and their order are the same as one fetch per batch. With
        `source.ahead` the next chunk is asked for before the current one is trained on, so
        effbench writes it meanwhile (prefetch_batches); the model evaluated is still the one
        trained on every chunk served before the evaluation."""
        if not hasattr(source, "take"):
            source = _Call(source)
        self.start(seed)
        pool = select(self.recipe, self.train_samples, seed)
        b = self.recipe.batch_size
        batches = self._batches(pool, host_rng(seed, SHUFFLE), b)
        chunks = self._chunks(batches, max(int(max_fetch or b), b), every, cap)
        samples = steps = 0

        def ask_next():
            chunk = next(chunks)
            source.ask(_cat(chunk))
            return chunk
        cur = ask_next()
        while True:
            batch = source.take()
            if batch is None:
                return steps
            if source.ahead:
                nxt = ask_next()
            x, y = batch
            off = 0
            for idx in cur:
                k = len(idx)
                self.step(x[off:off + k], None if y is None else y[off:off + k], self.recipe.lr_at(samples))
                samples += k
                steps += 1
                off += k
            if not source.ahead:
                nxt = ask_next()
            cur = nxt

    @staticmethod
    def _chunks(batches, limit, every, cap):
        """The batches grouped into chunks of at most `limit` rows, each ending at the batch
        that reaches an evaluation or the cap (see train)."""
        planned = 0
        next_eval = every if every > 0 else 0
        look = next(batches)
        while True:
            chunk, n = [look], len(look)
            look = next(batches)
            while not _ends_fetch(planned + n, next_eval, cap) and n + len(look) <= limit:
                chunk.append(look)
                n += len(look)
                look = next(batches)
            planned += n
            if next_eval and planned >= next_eval:
                next_eval = (planned // every + 1) * every
            yield chunk

    @staticmethod
    def _batches(pool, shuffle, b):
        """The batches of every epoch in turn: a fresh shuffle of the pool each epoch."""
        while True:
            order = pool[shuffle.permutation(len(pool))]
            for s in range(0, len(order), b):
                yield order[s:s + b]

    def ready(self):
        """Wait until all work issued so far has finished."""
        if self.params is not None:
            jax.block_until_ready(self.params)


class _Call:
    """A fetch function as a source: asks nothing ahead, fetches at take."""
    ahead = False

    def __init__(self, fetch):
        self.fetch, self.asked = fetch, []

    def ask(self, idx):
        self.asked.append(idx)

    def take(self):
        return self.fetch(self.asked.pop(0))


def _cat(chunk):
    return np.concatenate(chunk) if len(chunk) > 1 else chunk[0]


def _ends_fetch(served, next_eval, cap):
    """Whether a fetch that brings the samples served to `served` must be the last before
    effbench's next evaluation or its cap."""
    return bool((next_eval and served >= next_eval) or (cap and served >= cap))
