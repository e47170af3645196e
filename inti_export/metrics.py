"""Numeric comparisons shared by parity, the precision report, optimize, eval and the benchmarks (NumPy only)."""

from __future__ import annotations

import numpy as np


def cosine_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample: a, b (K, ...) -> (K,) float64."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the `k` largest logits (K, C) (ties broken by index)."""
    k = min(k, logits.shape[1])
    top = np.argsort(-logits.astype(np.float64), axis=1, kind="stable")[:, :k]  # (K, k)
    return float((top == labels[:, None]).any(axis=1).mean())


def topk_indices(logits: np.ndarray, k: int) -> np.ndarray:
    """The `k` largest logits' class indices per row (K, C) -> (K, k), ties broken by index."""
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def head_logits(x: np.ndarray, head: np.ndarray | None) -> np.ndarray:
    """Logits for top-k: the model's own (head None), else L2-normalised embeddings (K, E) @ head (E, C)."""
    if head is None:  # the model ends in its own classifier
        return x
    return (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-30)) @ head
