"""Small synthetic data sets with learnable structure, one per kind of training workload, in
the tensors the contract serves (float32 rows, int64 classes or character ids)."""

import gzip
import os

import numpy as np

from driver import Dataset, accuracy, mean_nats, roc_auc


def blobs(dim, classes=10, n_train=4000, n_test=1000, spread=0.15, seed=0, target=0.95):
    """Gaussian blobs: class centres N(0, spread^2) per coordinate, unit noise around them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, spread, (classes, dim))

    def draw(n):
        y = rng.integers(0, classes, n)
        return (centres[y] + rng.normal(0.0, 1.0, (n, dim))).astype(np.float32), y.astype(np.int64)
    x, y = draw(n_train)
    ex, ey = draw(n_test)
    return Dataset(x, y, ex, lambda logits: accuracy(logits, ey), True, target)


def cycle_text(vocab=75, context=64, n_train=3000, windows=64, seed=0, target=1.0):
    """Text that repeats a random permutation of the vocabulary: each character determines the
    next one, so a model can get far below ln(vocab) = 4.3 nats per character."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(vocab)

    def text(n, start):
        return perm[(start + np.arange(n)) % vocab].astype(np.int64)
    train = text(n_train + context + 1, 0)
    idx = np.arange(n_train)[:, None] + np.arange(context)[None, :]
    x, y = train[idx], train[idx + 1]
    held = text(windows * context + 1, 17)
    starts = np.arange(windows)[:, None] * context + np.arange(context)[None, :]
    ex, ey = held[starts], held[starts + 1]
    return Dataset(x, y, ex, lambda logits: mean_nats(logits, ey), False, target)


def subspace(dim=640, rank=8, n_train=2000, n_test=400, seed=0, target=0.9):
    """Normal rows lie near an 8-dimensional subspace; anomalous rows (half the test set) near
    another. Rows are standardised, as the machine-hum vectors are."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, (rank, dim)), rng.normal(0, 1, (rank, dim))

    def draw(n, basis):
        v = rng.normal(0, 1, (n, rank)) @ basis + 0.1 * rng.normal(0, 1, (n, dim))
        v = (v - v.mean(1, keepdims=True)) / v.std(1, keepdims=True)
        return v.astype(np.float32)
    x = draw(n_train, a)
    anomalous = np.arange(n_test) % 2 == 1
    ex = np.where(anomalous[:, None], draw(n_test, b), draw(n_test, a))

    def score(out):
        return roc_auc(((out - ex) ** 2).mean(axis=1), anomalous)
    return Dataset(x, None, ex, score, True, target)


def fashion_mnist(directory, target, n_test=2000):
    """The real Fashion-MNIST as effbench serves it (models/src/data/idx.rs, workload.rs): all of
    the directory's train split, the first `n_test` t10k images held out, pixels / 255."""
    def idx(name, header):
        with gzip.open(os.path.join(directory, name), "rb") as f:
            raw = f.read()
        return np.frombuffer(raw, np.uint8, offset=header)
    x = (idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784) / np.float32(255)).astype(np.float32)
    y = idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    ex = (idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)[:n_test] / np.float32(255)).astype(np.float32)
    ey = idx("t10k-labels-idx1-ubyte.gz", 8)[:n_test].astype(np.int64)
    return Dataset(x, y, ex, lambda logits: accuracy(logits, ey), True, target)


def for_workload(workload, **kw):
    """Synthetic data of the workload's shapes, and for the classifiers its sizes as effbench
    serves them (digits 1,437 / 360; Fashion-MNIST's shipped 10,000 / the first 2,000 of t10k),
    so a bench evaluates as many held-out rows as effbench sends."""
    fm = dict(n_train=10000, n_test=2000)
    return {"digits-mlp-train": lambda: blobs(64, spread=0.6, n_train=1437, n_test=360, **kw),
            "fmnist-mlp-train": lambda: blobs(784, **{**fm, **kw}),
            "fmnist-cnn-train": lambda: blobs(784, **{**fm, **kw}),
            "charlm-austen-train": lambda: cycle_text(**kw),
            "ae-machine-train": lambda: subspace(**kw)}[workload]()
