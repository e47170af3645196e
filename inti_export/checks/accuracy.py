"""What parity and eval share: accuracy against labels, its drop gate, and each runner's status.

    label_accuracy({"torch-cpu": logits, "ort-cpu": logits}, labels) -> [LabelAccuracy], reference first
    drop_failure(accuracy[i], accuracy[0], max_drop)                -> why runner i fails, or None
    RunnerStatus(runner, status, reason)                             one row per runner (docs/reports.md)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inti_export.metrics import topk_accuracy
from inti_export.vocab import Status


@dataclass
class LabelAccuracy:
    """One runner's accuracy against the clips' labels; `drop_points`: top-1 points lost against the reference."""

    runner: str
    top1: float
    top5: float
    correct1: int
    count: int
    drop_points: float = 0.0  # 100 x (reference top-1 - this top-1); 0 for the reference


@dataclass
class RunnerStatus:
    """One runner of a gate: `status` a `vocab.Status` value (ok, failed, skipped, not run), `reason`
    empty when ok."""

    runner: str
    status: str
    reason: str = ""


def label_accuracy(logits: dict[str, np.ndarray], labels: np.ndarray) -> list[LabelAccuracy]:
    """Top-1/top-5 of each runner's logits (K, C) against `labels` (K,); the first runner is the reference."""
    labels = np.asarray(labels, dtype=np.int64)
    out: list[LabelAccuracy] = []
    for name, x in logits.items():
        x = np.asarray(x)
        top1 = topk_accuracy(x, labels, 1)
        ref = out[0].top1 if out else top1
        out.append(LabelAccuracy(name, top1, topk_accuracy(x, labels, 5), round(top1 * len(labels)), len(labels),
                                 round(100.0 * (ref - top1), 6)))
    return out


def drop_failure(a: LabelAccuracy, reference: LabelAccuracy, max_drop: float) -> str | None:
    """Why `a` fails the drop gate (more than `max_drop` top-1 points below `reference`), or None."""
    if a.drop_points <= max_drop:
        return None
    return (f"{a.runner} loses {a.drop_points:.2f} points of top-1 against the labels"
            f" (> {max_drop:g}; {100 * a.top1:.2f}% vs {100 * reference.top1:.2f}%)")


def runner_status(ran: list[str], not_run: dict[str, str], failures: dict[str, list[str]]) -> list[RunnerStatus]:
    """`ran` runners in order (ok, or failed with `failures[runner]` joined), then `not_run` with its reasons."""
    rows = [RunnerStatus(r, Status.failed.value, "; ".join(failures[r])) if failures.get(r)
            else RunnerStatus(r, Status.ok.value) for r in ran]
    return rows + [RunnerStatus(r, Status.not_run.value, why) for r, why in not_run.items()]
