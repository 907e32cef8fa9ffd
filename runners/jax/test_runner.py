"""Tests of the JAX training runner: its recipe maths and models against candle's definitions
(models/src), and the runner itself as a child process driven over Runner Protocol v1.1 by
driver.py, which plays effbench's side and checks every message.

    bash runners/jax/setup.sh && runners/jax/.venv/bin/python -m unittest runners/jax/test_runner.py -v

The in-process tests import jax; XLA is limited to one thread, as the runner does.
"""

import json
import math
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import runner  # noqa: E402

runner.configure_threads(1)  # before jax is imported, as in the runner

import numpy as np  # noqa: E402

import driver  # noqa: E402
import nets  # noqa: E402
import synth  # noqa: E402
import trainer  # noqa: E402

BASELINE = {"name": "baseline", "optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 0.01,
            "batch_size": 64, "precision": "f32"}


def with_(d, **kw):
    return {**d, **kw}


# Parameter counts from the architectures in models/src (layers.rs: Linear in*out + out,
# Conv2d c_out*c_in*k*k + c_out, LayerNorm 2d, Embedding n*d), written out here independently.
def linear_count(i, o):
    return i * o + o


CANDLE_COUNTS = {
    "digits-mlp-train": linear_count(64, 128) + linear_count(128, 10),
    "fmnist-mlp-train": linear_count(784, 128) + linear_count(128, 10),  # 101,770
    "fmnist-cnn-train": (16 * 9 + 16) + (32 * 16 * 9 + 32) + linear_count(1568, 64) + linear_count(64, 10),
    "charlm-austen-train": 75 * 64 + 64 * 64 + 2 * (2 * 64 + 4 * linear_count(64, 64) + 2 * 64
                                                    + linear_count(64, 256) + linear_count(256, 64))
    + 2 * 64 + linear_count(64, 75),
    "ae-machine-train": sum(linear_count(a, b) for a, b in zip(nets.AE_SIZES, nets.AE_SIZES[1:])),
}


class RecipeMaths(unittest.TestCase):
    def test_lr_at_matches_recipe_rs(self):
        # The values of models/src/recipe.rs's lr_at test.
        r = trainer.Recipe(BASELINE)
        self.assertEqual(r.lr_at(12345), 1e-3)
        r = trainer.Recipe(with_(BASELINE, schedule={"kind": "cosine", "warmup_samples": 100,
                                                     "decay_samples": 1000, "min_lr_fraction": 0.1}))
        self.assertAlmostEqual(r.lr_at(0), 1e-5, delta=1e-12)
        self.assertAlmostEqual(r.lr_at(100), 1e-3, delta=1e-12)
        self.assertAlmostEqual(r.lr_at(1100), 1e-4, delta=1e-12)
        self.assertAlmostEqual(r.lr_at(600), 0.55e-3, delta=1e-9)
        r = trainer.Recipe(with_(BASELINE, schedule={"kind": "step", "decay_samples": 1000, "min_lr_fraction": 0.5}))
        self.assertAlmostEqual(r.lr_at(2500), 0.25e-3, delta=1e-12)

    def run_optimizer(self, recipe, grads):
        tx = trainer.optimizer(trainer.Recipe(recipe))
        w = {"w": np.array([0.1, -0.2, 0.3], np.float32)}
        state = tx.init(w)
        for t, g in enumerate(grads, 1):
            w, state = tx.apply(w, state, {"w": g}, tx.hyper(t, recipe["learning_rate"]))
        return np.asarray(w["w"])

    def test_adamw_is_adamw_rs(self):
        grads = [np.array(g, np.float32) for g in ([0.5, -1.0, 2.0], [0.1, 0.3, -0.2], [-0.4, 0.2, 0.9])]
        lr, wd = 0.05, 0.1
        f = np.float32
        # models/src/adamw.rs, FusedAdamW::step and Update::cpu_fwd, with its casts: the moments
        # in f32 with b1, b2 as f32; lr, 1 - lr wd and the bias corrections from f64 to f32.
        b1, b2, eps = f(0.9), f(0.999), f(1e-8)
        w, m, v = np.array([0.1, -0.2, 0.3], f), np.zeros(3, f), np.zeros(3, f)
        for t, g in enumerate(grads, 1):
            scale_m, scale_v = f(1.0 / (1.0 - 0.9 ** t)), f(1.0 / (1.0 - 0.999 ** t))
            m = b1 * m + (f(1) - b1) * g
            v = b2 * v + (f(1) - b2) * g * g
            w = w * f(1.0 - lr * wd) - f(lr) * ((m * scale_m) / (np.sqrt(v * scale_v) + eps))
        got = self.run_optimizer(with_(BASELINE, learning_rate=lr, weight_decay=wd), grads)
        np.testing.assert_allclose(got, w, rtol=2e-6)
        # And the exact (f64) maths, to f32 rounding (magnified by cancellation in element 0).
        w64, m, v = np.array([0.1, -0.2, 0.3]), np.zeros(3), np.zeros(3)
        for t, g in enumerate(grads, 1):
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            w64 = w64 * (1 - lr * wd) - lr * ((m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8))
        np.testing.assert_allclose(got, w64, rtol=3e-4)

    def test_sgd_is_momentum_sgd_of_train_rs(self):
        grads = [np.array(g, np.float32) for g in ([0.5, -1.0, 2.0], [0.1, 0.3, -0.2])]
        lr, mu = 0.1, 0.9
        w, vel = np.array([0.1, -0.2, 0.3]), np.zeros(3)
        for g in grads:  # v <- mu v + g; w <- w - lr v (weight_decay unused)
            vel = mu * vel + g
            w = w - lr * vel
        got = self.run_optimizer(with_(BASELINE, optimizer="sgd", learning_rate=lr, momentum=mu), grads)
        np.testing.assert_allclose(got, w, rtol=1e-6)

    def test_selection(self):
        full = trainer.select(trainer.Recipe(BASELINE), 1437, 0)
        self.assertEqual(full.tolist(), list(range(1437)))
        r = trainer.Recipe(with_(BASELINE, data={"selection": "random-subset", "fraction": 0.3}))
        a, b = trainer.select(r, 1437, 0), trainer.select(r, 1437, 1)
        self.assertEqual(len(a), math.ceil(0.3 * 1437))
        self.assertEqual(a.tolist(), sorted(set(a.tolist())))
        self.assertTrue(0 <= a.min() and a.max() < 1437)
        self.assertNotEqual(a.tolist(), b.tolist())
        self.assertEqual(trainer.select(r, 1437, 0).tolist(), a.tolist())

    def test_refuses_what_it_cannot_do(self):
        for bad, word in ((with_(BASELINE, data={"selection": "pruned", "fraction": 0.5}), "pruned"),
                          (with_(BASELINE, precision="bf16"), "f32 only"),
                          (with_(BASELINE, optimizer="lion"), "lion"),
                          (with_(BASELINE, schedule={"kind": "cosine"}), "decay_samples")):
            with self.assertRaises(trainer.RecipeError) as e:
                trainer.Recipe(bad)
            self.assertIn(word, str(e.exception))


class Models(unittest.TestCase):
    def test_counts_match_candle(self):
        for w, want in CANDLE_COUNTS.items():
            self.assertEqual(nets.build(w).count(), want, w)
        self.assertEqual(CANDLE_COUNTS["fmnist-mlp-train"], 101770)

    def test_mlp_names_and_shapes_are_candles(self):
        specs = [(n, s) for n, s, _, _ in nets.build("fmnist-mlp-train").specs]
        self.assertEqual(specs, [("fc0.weight", (784, 128)), ("fc0.bias", (128,)),
                                 ("fc1.weight", (128, 10)), ("fc1.bias", (10,))])

    def test_init_distributions(self):
        import jax
        for w in CANDLE_COUNTS:
            net = nets.build(w)
            params = net.init(jax.random.PRNGKey(3))
            for name, shape, kind, bound in net.specs:
                p = np.asarray(params[name])
                self.assertEqual(p.shape, shape, name)
                if kind == "constant":
                    self.assertTrue((p == bound).all(), name)
                    continue
                self.assertLessEqual(np.abs(p).max(), bound, name)
                if p.size >= 1000:  # U(-b, b): mean 0, variance b^2/3
                    self.assertGreater(np.abs(p).max(), 0.98 * bound, name)
                    self.assertLess(abs(p.mean()), 0.1 * bound, name)
                    self.assertAlmostEqual(p.var() / (bound ** 2 / 3), 1.0, delta=0.1, msg=name)
        specs = {n: b for n, _, _, b in nets.build("fmnist-cnn-train").specs}
        self.assertAlmostEqual(specs["conv2.weight"], 1 / math.sqrt(16 * 9))
        specs = {n: b for n, _, _, b in nets.build("charlm-austen-train").specs}
        self.assertAlmostEqual(specs["tok.weight"], math.sqrt(3))
        self.assertAlmostEqual(specs["block0.fc2.weight"], 1 / 16)

    def test_padded_last_batch_is_the_small_batch(self):
        import jax
        data = synth.blobs(784, n_train=100, n_test=10)
        x, y = data.x[:40], data.y[:40]
        # SGD: AdamW's first step, g/|g|, would magnify the rounding of near-zero gradients.
        sgd = with_(BASELINE, optimizer="sgd", momentum=0.9)
        padded = trainer.Trainer("fmnist-mlp-train", trainer.Recipe(sgd), 100)
        exact = trainer.Trainer("fmnist-mlp-train", trainer.Recipe(with_(sgd, batch_size=40)), 100)
        for t in (padded, exact):
            t.start(5)
            t.step(x, y, 1e-1)
        for name in padded.params:
            np.testing.assert_allclose(padded.params[name], exact.params[name], rtol=1e-5, atol=1e-6)
        start = nets.build("fmnist-mlp-train").init(jax.random.fold_in(jax.random.PRNGKey(5), trainer.INIT))
        self.assertFalse(np.allclose(padded.params["fc0.bias"], start["fc0.bias"]), "the step changed the weights")


class Protocol(unittest.TestCase):
    """runner.py as a child process, driven over the protocol."""

    def check_epochs(self, fetched, pool_size, batch):
        """Every epoch is a permutation of the pool, in batches of `batch` but the last."""
        flat = [i for f in fetched for i in f]
        for e in range(len(flat) // pool_size):
            self.assertEqual(len(set(flat[e * pool_size:(e + 1) * pool_size])), pool_size, "epoch %d" % e)

    def test_fmnist_mlp_trains_to_target_deterministically(self):
        data = synth.blobs(784, n_train=1000, n_test=1000, spread=0.2)
        d = driver.Driver("fmnist-mlp-train", data, BASELINE, every_samples=512, sample_cap=30000)
        try:
            hello, load = d.load()
            self.assertEqual((hello["minor"], hello["ops"]), (1, ["train"]))
            self.assertEqual(hello["telemetry"], ["busy_s"])
            self.assertTrue(load["ok"], load)
            self.assertEqual((load["division"], load["params"], load["precision"]), ("closed", 101770, "f32"))
            runs = []
            for rep, seed in ((0, 0), (1, 0), (2, 1)):
                first = len(d.received)
                r = d.repeat(rep, seed)
                fetches = [m["indices"] for m in d.received[first:] if m.get("op") == "fetch"]
                runs.append((r, fetches))
            r, fetches = runs[0]
            self.assertEqual(r.done, "target")
            self.assertGreaterEqual(r.evaluations[-1][1], 0.95)
            self.assertGreater(r.served, 1000, "a second epoch was needed")
            self.assertLess(r.evaluations[0][1], 0.9, "the first evaluation is before the model learnt")
            # 512 = 8 x 64; then 15 x 64 + 40 (the epoch's last batch) = 1000, + 64 = 1064.
            self.assertEqual([s for s, _ in r.evaluations[:2]], [512, 1064])
            # Whole batches grouped into one fetch up to the next evaluation: 8 x 64 = 512, then
            # 7 x 64 + 40 + 64 = 552 (the batch that reaches 1024 ends the fetch).
            self.assertEqual([len(f) for f in fetches[:2]], [512, 552])
            self.assertLess(r.fetches, r.reply["steps"])
            self.check_epochs(fetches, 1000, 64)
            self.assertGreater(r.busy_s, 0)
            self.assertEqual(runs[1][0].evaluations, r.evaluations, "same seed, same run")
            self.assertEqual(runs[1][1][:len(fetches)], fetches)
            self.assertNotEqual(runs[2][1][0], fetches[0], "another seed, another shuffle")
            marks = [m["t_mono_ns"] for m in d.received if "t_mono_ns" in m]
            self.assertEqual(marks, sorted(marks))
        finally:
            d.close()

    def test_digits_subset_cosine_split_fetches(self):
        recipe = with_(BASELINE, batch_size=32, learning_rate=8e-3, data={"selection": "random-subset", "fraction": 0.5},
                       schedule={"kind": "cosine", "warmup_samples": 320, "decay_samples": 8000, "min_lr_fraction": 0.1})
        data = synth.for_workload("digits-mlp-train")
        d = driver.Driver("digits-mlp-train", data, recipe, every_samples=320, sample_cap=20000, max_fetch=16)
        try:
            self.assertTrue(d.load()[1]["ok"])
            r = d.repeat()
            fetched = [m["indices"] for m in d.received if m.get("op") == "fetch"]
            self.assertEqual(r.done, "target")
            self.assertLessEqual(max(map(len, fetched)), 16)
            steps, acc = 0, 0  # a step is two fetches of 16, or the epoch's last, shorter batch
            for n in map(len, fetched[:-1]):  # the last fetch was answered `done`
                acc += n
                if acc == 32 or n < 16:
                    steps, acc = steps + 1, 0
            self.assertEqual((r.reply["steps"], acc), (steps, 0))
            self.assertEqual(sum(map(len, fetched[:-1])), r.served)
            self.assertLessEqual(len(r.seen), math.ceil(0.5 * 1437))
        finally:
            d.close()

    def test_other_workloads_shapes_and_learning(self):
        # (workload, batch, lr, every, cap, must reach the target)
        cases = [("charlm-austen-train", 32, 3e-3, 512, 4096, True),
                 ("ae-machine-train", 64, 1e-3, 512, 8192, True),
                 ("fmnist-cnn-train", 64, 1e-3, 64, 128, False)]
        for w, batch, lr, every, cap, learn in cases:
            with self.subTest(w):
                data = synth.for_workload(w)
                d = driver.Driver(w, data, with_(BASELINE, batch_size=batch, learning_rate=lr), every, cap)
                try:
                    load = d.load()[1]
                    self.assertEqual(load["params"], CANDLE_COUNTS[w])
                    r = d.repeat()  # the driver checks each evaluate output's path, dtype, shape, size
                    self.assertEqual(r.done, "target" if learn else "cap")
                    self.assertTrue(all(math.isfinite(q) for _, q in r.evaluations))
                    if not learn:
                        self.assertEqual(r.served, cap)
                finally:
                    d.close()

    def test_bad_requests_are_refused_with_the_reason(self):
        data = synth.blobs(64, n_train=200, n_test=50)
        d = driver.Driver("digits-mlp-train", data, with_(BASELINE, data={"selection": "pruned", "fraction": 0.5}),
                          every_samples=64, sample_cap=1000)
        try:
            hello, load = d.load()
            self.assertFalse(load["ok"])
            self.assertIn("pruned", load["error"]["msg"])
            self.assertFalse(d.request("train", repeat=0, seed=0)["ok"], "train before a workload is loaded")
            base = dict(workload="digits-mlp-train", recipe=BASELINE, train_samples=200, max_fetch=4096,
                        input={"dtype": "float32", "shape": [None, 64]}, target={"dtype": "int64", "shape": [None]},
                        output={"dtype": "float32", "shape": [None, 10]}, seed=0, threads=1)
            eval_path = os.path.join(d.work, "eval_inputs.bin")
            bad_eval = d.request("train_load", eval={"path": eval_path, "dtype": "float32", "shape": [49, 64]}, **base)
            self.assertIn("has 12800 bytes", bad_eval["error"]["msg"])
            other = d.request("train_load", eval={"path": eval_path, "dtype": "float32", "shape": [50, 64]},
                              **with_(base, workload="mnist-resnet-train"))
            self.assertIn("no model for workload 'mnist-resnet-train'", other["error"]["msg"])
            good = {"path": eval_path, "dtype": "float32", "shape": [50, 64]}
            # model.params / param_count (the contract's later additions) must be the runner's model.
            ref = [{"name": n, "shape": list(s)} for n, s, _, _ in nets.build("digits-mlp-train").specs]
            swapped = [ref[0], ref[1], {"name": "fc1.weight", "shape": [10, 128]}, ref[3]]
            bad = d.request("train_load", eval=good, **with_(base, model={"params": swapped}))
            self.assertIn("at parameter 2: effbench lists ('fc1.weight', [10, 128]), the runner has "
                          "('fc1.weight', [128, 10])", bad["error"]["msg"])
            bad = d.request("train_load", eval=good, **with_(base, model={"param_count": 9611}))
            self.assertIn("param_count is 9611, this runner's model has 9610", bad["error"]["msg"])
            ok = d.request("train_load", eval=good, **with_(base, model={"params": ref, "param_count": 9610}))
            self.assertTrue(ok["ok"], ok)
            d.next_id += 1
            d.send({"v": 1, "id": d.next_id, "op": "train", "repeat": 0, "seed": 0})
            fetch = d.recv()
            self.assertEqual(fetch["op"], "fetch")
            n = len(fetch["indices"])
            x = os.path.join(d.work, "batches", "bad.x.bin")
            np.zeros((n, 63), np.float32).tofile(x)
            d.send({"v": 1, "re": fetch["id"], "ok": True, "x": {"path": x, "dtype": "float32", "shape": [n, 63]},
                    "y": {"path": x, "dtype": "int64", "shape": [n]}, "served": n})
            reply = d.recv()
            self.assertEqual(reply["re"], d.next_id)
            self.assertFalse(reply["ok"])
            self.assertIn("fetch reply x: shape [%d, 63], expected [%d, 64]" % (n, n), reply["error"]["msg"])
            os.unlink(x)
            self.assertIn("unknown op", d.request("issue", start=0, rows=1)["error"]["msg"])
        finally:
            d.close()

    def test_stdout_carries_replies_only(self):
        # A stray print goes to stderr: the runner's fd 1 is stderr once it serves.
        d = driver.Driver("digits-mlp-train", synth.blobs(64, n_train=10, n_test=5), BASELINE, 64, 64,
                          command=[driver.PYTHON, "-c", "import sys; sys.path.insert(0, %r); import runner; "
                                   "runner.Runner.stats = lambda self, m: (print('noise'), os.write(1, b'x\\n'), "
                                   "{'busy_s': 0.0})[2]; import os; runner.serve()" % HERE])
        try:
            reply = d.request("stats")
            self.assertEqual(json.loads(json.dumps(reply))["busy_s"], 0.0)
        finally:
            d.close()


if __name__ == "__main__":
    unittest.main()
