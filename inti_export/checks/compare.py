"""Comparing two runners' outputs: error statistics (Polygraphy's comparator), cosine, top-k agreement."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from inti_export.metrics import cosine_per_sample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria for one precision. `rel_err` is max |test - ref| over max |ref| (the output's scale)."""

    name: str
    rel_err: float
    cosine: float  # minimum per-clip cosine similarity
    top1: float | None  # minimum top-1 (or nearest-neighbour) agreement; None: reported, not gated


TOLERANCES = {
    "fp32": Tolerance("fp32", 1e-4, 0.99999, 1.0),
    "fp16": Tolerance("fp16", 2e-2, 0.999, None),
    "bf16": Tolerance("bf16", 5e-2, 0.999, None),
    "int8": Tolerance("int8", 2e-1, 0.99, None),
    "fp8": Tolerance("fp8", 2e-1, 0.99, None),
}


def get_tolerance(name: str) -> Tolerance:
    from inti_export.errors import ParityError

    if name not in TOLERANCES:
        raise ParityError(f"unknown tolerance preset {name!r}; use one of {', '.join(TOLERANCES)}")
    return TOLERANCES[name]


@dataclass
class Comparison:
    """One output of `runner` against the same output of `reference`."""

    output: str
    reference: str
    runner: str
    max_abs_err: float
    mean_abs_err: float
    max_rel_err: float  # elementwise |a-b|/|b|, Polygraphy's definition
    mean_rel_err: float
    rel_to_scale: float  # max_abs_err / max |ref|
    cosine_min: float
    cosine_mean: float
    top1_agreement: float  # logits: top-1 class; embeddings: nearest-neighbour clip
    top5_agreement: float | None  # logits only: mean overlap of the top-5 sets
    agreement_kind: str  # "top-k" or "nearest-neighbour"
    passed: bool
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _nearest_neighbours(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float64)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-30)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


def agreement(test: np.ndarray, ref: np.ndarray, logits: bool) -> tuple[float, float | None]:
    """(top-1, top-5) agreement for logits; (nearest-neighbour agreement, None) for embeddings."""
    if logits:
        top1 = float((test.argmax(1) == ref.argmax(1)).mean())
        k = min(5, test.shape[1])
        t5, r5 = np.argsort(-test, 1)[:, :k], np.argsort(-ref, 1)[:, :k]
        top5 = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(t5, r5, strict=True)]))
        return top1, top5
    if len(ref) < 2:
        return 1.0, None
    return float((_nearest_neighbours(test) == _nearest_neighbours(ref)).mean()), None


def compare_arrays(
    test: np.ndarray, ref: np.ndarray, tol: Tolerance, *, output: str, runner: str, reference: str, logits: bool
) -> Comparison:
    """Compare one output; error statistics come from Polygraphy's SimpleCompareFunc."""
    from polygraphy.comparator import IterationResult, SimpleCompareFunc
    from polygraphy.logger import G_LOGGER

    test = np.asarray(test, dtype=np.float32)
    ref = np.asarray(ref, dtype=np.float32)
    scale = float(np.abs(ref).max()) or 1.0
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):
        result = SimpleCompareFunc(atol=tol.rel_err * scale, rtol=0.0, check_error_stat="max", check_shapes=True)(
            IterationResult({output: ref}, runner_name=reference), IterationResult({output: test}, runner_name=runner)
        )[output]
    cos = cosine_per_sample(test, ref)
    top1, top5 = agreement(test, ref, logits)
    failures = []
    if not bool(result):
        failures.append(f"max abs err {result.max_absdiff:.3e} > {tol.rel_err:.0e} x scale {scale:.3g}")
    if cos.min() < tol.cosine:
        failures.append(f"cosine {cos.min():.6f} < {tol.cosine}")
    if tol.top1 is not None and top1 < tol.top1:
        failures.append(f"top-1 agreement {top1:.3f} < {tol.top1}")
    return Comparison(
        output=output,
        reference=reference,
        runner=runner,
        max_abs_err=float(result.max_absdiff),
        mean_abs_err=float(result.mean_absdiff),
        max_rel_err=float(result.max_reldiff),
        mean_rel_err=float(result.mean_reldiff),
        rel_to_scale=float(result.max_absdiff) / scale,
        cosine_min=float(cos.min()),
        cosine_mean=float(cos.mean()),
        top1_agreement=top1,
        top5_agreement=top5,
        agreement_kind="top-k" if logits else "nearest-neighbour",
        passed=not failures,
        failures=failures,
    )
