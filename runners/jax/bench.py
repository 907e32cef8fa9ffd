"""Samples/s of the JAX runner's training loop, bare (in-process) and through the protocol.

    .venv/bin/python runner.py --bench fmnist-mlp-train [--threads 1] [--samples 60000]
    .venv/bin/python bench.py fmnist-mlp-train [--threads 1] [--samples 60000]

`runner.py --bench` runs trainer.Trainer.train with an in-process fetch (rows gathered from
memory, no files, no messages) and the same evaluations at the same sample counts as through
the protocol. `bench.py` runs the same training through driver.Driver: one fetch message and
one pair of batch files on /dev/shm per batch, evaluate messages and output files. Both use
the synthetic data of synth.py; the target is out of reach, so both train exactly --samples
samples. Each prints one JSON line per repeat.

With `--data DIR --target Q` (Fashion-MNIST workloads) the bare loop trains on the real data
instead, as effbench serves it: every training image of DIR's train split, the first 2,000
t10k images held out, pixels / 255 (models/src/data/idx.rs), scored by accuracy, stopping at the
first evaluation that meets Q or at --samples. Repeat r uses seed r, as `effbench run --repeat`
does, so on the same data bare and through effbench do the same work: the same batches, the
same evaluations, the same samples to target. bench/runner-overhead.sh compares the two.
"""

import argparse
import json
import sys
import time

import numpy as np

RECIPES = {"digits-mlp-train": (32, 1e-3, 320), "fmnist-mlp-train": (64, 1e-3, 2048),
           "fmnist-cnn-train": (64, 1e-3, 2048), "charlm-austen-train": (32, 3e-3, 1024),
           "ae-machine-train": (64, 1e-3, 500)}


def args_of(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=sorted(RECIPES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=60000, help="samples trained per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", help="Fashion-MNIST IDX directory: train on the real data (bare only)")
    ap.add_argument("--target", type=float, help="with --data: stop at the first evaluation that meets it")
    return ap.parse_args(argv)


def recipe(workload):
    batch, lr, _ = RECIPES[workload]
    return {"name": "baseline", "optimizer": "adamw", "learning_rate": lr, "weight_decay": 0.01,
            "batch_size": batch, "precision": "f32"}


def unreachable(data):
    data.target = float("inf") if data.higher else float("-inf")
    return data


def main(argv, configure_threads):
    """Bare: the trainer with rows from memory and in-process evaluations."""
    a = args_of(argv)
    configure_threads(a.threads)
    import synth
    import trainer
    if a.data:
        if a.target is None or not a.workload.startswith("fmnist-"):
            raise SystemExit("--data needs --target and a Fashion-MNIST workload")
        data = synth.fashion_mnist(a.data, a.target)
    else:
        data = unreachable(synth.for_workload(a.workload))
    from runner import aligned_empty
    data.eval_x = aligned(data.eval_x, aligned_empty)
    # Each batch is gathered into 64-byte aligned memory, as effbench's mapped batch files are:
    # XLA takes aligned rows without a copy (runner.aligned_empty), so bare gets that too.
    bufs = [None if v is None else aligned_empty((RECIPES[a.workload][0],) + v.shape[1:], v.dtype)
            for v in (data.x, data.y)]
    every = RECIPES[a.workload][2]
    t = trainer.Trainer(a.workload, trainer.Recipe(recipe(a.workload)), len(data.x))
    t.warm(data.eval_x)
    for rep in range(a.repeats):
        state = {"served": 0, "next": every, "evals": 0}

        def fetch(idx):
            if state["served"] >= state["next"] or state["served"] >= a.samples:
                state["next"] += every
                met = data.met(data.score(t.output(data.eval_x)))
                state["evals"] += 1
                if met or state["served"] >= a.samples:
                    return None
            state["served"] += len(idx)
            rows = [None if v is None else np.take(v, idx, axis=0, out=b[:len(idx)])
                    for v, b in zip((data.x, data.y), bufs)]
            return rows[0], rows[1]
        t.busy_s = 0.0
        t0 = time.perf_counter()
        steps = t.train(rep, fetch)
        wall = time.perf_counter() - t0
        report("bare", a, rep, state["served"], steps, state["evals"], wall, t.busy_s)


def aligned(arr, aligned_empty):
    out = aligned_empty(arr.shape, arr.dtype)
    out[...] = arr
    return out


def report(mode, a, rep, served, steps, evals, wall, busy):
    print(json.dumps({"mode": mode, "workload": a.workload, "threads": a.threads, "repeat": rep,
                      "samples": served, "steps": steps, "evaluations": evals, "wall_s": round(wall, 4),
                      "busy_s": round(busy, 4), "samples_per_s": round(served / wall, 1)}), flush=True)


def through_driver(argv):
    a = args_of(argv)
    import driver
    import synth
    data = unreachable(synth.for_workload(a.workload))
    d = driver.Driver(a.workload, data, recipe(a.workload), RECIPES[a.workload][2], a.samples,
                      threads=a.threads)
    try:
        d.load()
        for rep in range(a.repeats):
            r = d.repeat(rep, rep)
            report("protocol", a, rep, r.served, r.reply.get("steps"), len(r.evaluations), r.wall_s, r.busy_s)
    finally:
        d.close()


if __name__ == "__main__":
    through_driver(sys.argv[1:])
