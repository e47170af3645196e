"""How close a candidate is to PyTorch FP32 on the held-out clips, and the gate it must pass.

    accuracy(out, ref, head, ...) -> Accuracy      cosine, rel err, top-1/top-5 agreement (and labels)
    check_gate(accuracy, precision, ...) -> Gate   the precision's tolerance preset, or the user's thresholds

The gate is evaluated on every run from the cached figures (docs/optimize.md, "Gate").
"""

from __future__ import annotations

import numpy as np

from inti_export.jobs.optimize.report import Accuracy, Gate
from inti_export.metrics import cosine_per_sample, head_logits, topk_accuracy

HEAD_CLASSES, HEAD_SEED = 400, 0  # the precision report's fixed head (calibration/report.py)


def fixed_head(cfg) -> tuple[np.ndarray | None, str]:
    """(head, how top-k is read): None for a model with its own classes, else the precision report's
    seeded random head on the embeddings."""
    from inti_export.calibration.report import random_head

    if cfg.num_classes:
        return None, "the model's own class head"
    return (random_head(cfg.embed_dim, HEAD_CLASSES, HEAD_SEED),
            f"random linear head {cfg.embed_dim}x{HEAD_CLASSES}, numpy default_rng({HEAD_SEED}) (as the precision report)")


def accuracy(
    out: np.ndarray, ref: np.ndarray, head: np.ndarray | None, head_text: str, computed_by: str,
    labels: np.ndarray | None = None,
) -> Accuracy:
    """Cosine, relative error and top-1/top-5 agreement of `out` against `ref` (K, E); with `labels` (K,)
    (the model's own logits), also top-1/top-5 against them and the top-1 points lost against `ref`."""
    from inti_export.checks.compare import agreement

    cos = cosine_per_sample(out, ref)
    scale = float(np.abs(ref).max()) or 1.0
    top1, top5 = agreement(head_logits(out, head), head_logits(ref, head), logits=True)
    acc = Accuracy(len(ref), float(cos.min()), float(cos.mean()), float(np.abs(out - ref).max()) / scale,
                   top1, float(top5), head_text, computed_by)
    if labels is not None:
        acc.label_top1 = topk_accuracy(out, labels, 1)
        acc.label_top5 = topk_accuracy(out, labels, 5)
        acc.label_top1_drop_points = round(100.0 * (topk_accuracy(ref, labels, 1) - acc.label_top1), 6)
    return acc


def gate_rule(
    precision: str, min_cosine: float | None, min_top1: float | None
) -> tuple[float | None, float | None, float | None]:
    """(min cosine, max rel err, min top-1): the precision's tolerance preset, or the user's thresholds."""
    from inti_export.checks.compare import get_tolerance

    if min_cosine is not None or min_top1 is not None:
        return min_cosine, None, min_top1
    tol = get_tolerance(precision)
    return tol.cosine, tol.rel_err, tol.top1


def check_gate(
    acc: Accuracy, precision: str, min_cosine: float | None, min_top1: float | None, max_top1_drop: float | None = None
) -> Gate:
    """The precision's rule (or the user's thresholds) and, when the accuracy has labels, `max_top1_drop`."""
    cos_t, rel_t, top1_t = gate_rule(precision, min_cosine, min_top1)
    failures = []
    if cos_t is not None and acc.cosine_min < cos_t:
        failures.append(f"cosine min {acc.cosine_min:.6f} < {cos_t}")
    if rel_t is not None and acc.rel_err > rel_t:
        failures.append(f"rel err {acc.rel_err:.2e} > {rel_t:.0e}")
    if top1_t is not None and acc.top1_agreement < top1_t:
        failures.append(f"top-1 agreement {acc.top1_agreement:.3f} < {top1_t}")
    labelled = max_top1_drop is not None and acc.label_top1_drop_points is not None
    if labelled and acc.label_top1_drop_points > max_top1_drop:
        failures.append(f"loses {acc.label_top1_drop_points:.2f} points of top-1 against the labels (> {max_top1_drop:g})")
    rule = _rule_text(precision, min_cosine, min_top1)
    if labelled:
        rule += f"; top-1 against the labels at most {max_top1_drop:g} points below PyTorch FP32"
    return Gate(not failures, rule, failures)


def _rule_text(precision: str, min_cosine: float | None, min_top1: float | None) -> str:
    cos_t, rel_t, top1_t = gate_rule(precision, min_cosine, min_top1)
    parts = ([f"cosine min >= {cos_t}"] if cos_t is not None else []) + (
        [f"rel err <= {rel_t:.0e}"] if rel_t is not None else []) + (
        [f"top-1 >= {top1_t}"] if top1_t is not None else [])
    src = "--min-cosine/--min-top1" if min_cosine is not None or min_top1 is not None else f"tolerance preset {precision}"
    return f"{src}: {', '.join(parts) or 'nothing'}"
