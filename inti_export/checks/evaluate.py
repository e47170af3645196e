"""Accuracy against labels: top-1/top-5 of the PyTorch model and of its ONNX or engine artifacts.

    evaluate(model, clips, labels, onnx_path=...)       -> EvalReport (each runner's LabelAccuracy)
    apply_gate(report, expect_top1, max_drop)           -> failures; sets each runner's status

Videos are decoded through `inti_export.video` (one clip per video, as parity does);
labels come from a `video,label` CSV (`inti_export.video.labels.labelled_clips`, docs/task.md).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.checks.accuracy import LabelAccuracy, RunnerStatus, label_accuracy, runner_status
from inti_export.errors import IntiExportError, one_line
from inti_export.runtime.base import infer_clips
from inti_export.vocab import package_versions

logger = logging.getLogger(__name__)


@dataclass
class EvalReport:
    """Accuracy of each runner on the same clips; `drop_points` is against the first (the reference)."""

    preset: str
    videos: str
    labels: str
    count: int
    results: list[LabelAccuracy]
    skipped: dict[str, str] = field(default_factory=dict)  # runner -> why it could not run here
    onnx: str | None = None
    engine: str | None = None
    checkpoint: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    runner_status: list[RunnerStatus] = field(default_factory=list)  # every runner asked for, in order
    gate: dict[str, Any] | None = None  # {expect_top1, max_drop, allow_skip, failures, passed} once gated

    def drop_points(self, runner: str) -> float:
        """Top-1 points lost by `runner` against the reference (positive: worse)."""
        by = {r.runner: r for r in self.results}
        if runner not in by:
            raise IntiExportError(f"no accuracy for runner {runner!r}; have {sorted(by)}")
        return by[runner].drop_points

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["drop_points"] = {r.runner: r.drop_points for r in self.results[1:]}
        return d


def evaluate(
    model,
    clips: np.ndarray,
    labels: np.ndarray,
    *,
    videos: str | Path = "",
    labels_path: str | Path = "",
    onnx_path: str | Path | None = None,
    engine_path: str | Path | None = None,
    batch: int = 32,
    threads: int | None = None,
) -> EvalReport:
    """Top-1/top-5 of PyTorch (reference) and of `onnx_path` on ORT CPU and `engine_path` on TensorRT.

    An engine that cannot run here (no GPU, no TensorRT) is recorded in `skipped` with the reason,
    and its status is `not run`.
    """
    from inti_export.runtime.ort_runner import OrtRunner
    from inti_export.runtime.torch_runner import TorchRunner

    if model.head is None:
        raise IntiExportError(
            f"preset {model.cfg.name} has no classifier head (num_classes=0): accuracy needs a preset with num_classes"
        )
    if len(clips) != len(labels):
        raise IntiExportError(f"{len(clips)} clips but {len(labels)} labels; they must pair up")
    runners = [TorchRunner(model)]
    skipped: dict[str, str] = {}
    if onnx_path is not None:
        runners.append(OrtRunner(onnx_path, device="cpu", threads=threads))
    if engine_path is not None:
        try:
            from inti_export.runtime.trt import TrtRunner

            runners.append(TrtRunner(engine_path))
        except IntiExportError as e:
            skipped["trt"] = one_line(e)
    logits: dict[str, np.ndarray] = {}
    for r in runners:
        try:
            with r:
                logits[r.name] = infer_clips(r, clips, batch, model.output_name)  # (K, C)
        except (IntiExportError, ImportError) as e:
            if r is runners[0]:
                raise
            skipped[r.name] = one_line(e)
            logger.warning("skipping runner %s: %s", r.name, skipped[r.name])
    return EvalReport(
        preset=model.cfg.name, videos=str(videos), labels=str(labels_path), count=len(labels),
        results=label_accuracy(logits, labels), skipped=skipped, onnx=str(onnx_path) if onnx_path else None,
        engine=str(engine_path) if engine_path else None, versions=package_versions(),
        runner_status=runner_status(list(logits), skipped, {}),
    )


def runner_failures(report: EvalReport, expect_top1: float | None, max_drop: float) -> dict[str, str]:
    """runner -> why it fails the accuracy gate: the reference below `expect_top1` (percent) by more than
    `max_drop` points, or an artifact more than `max_drop` points below the reference."""
    failures = {}
    ref = report.results[0]
    if expect_top1 is not None and 100 * ref.top1 < expect_top1 - max_drop:
        failures[ref.runner] = (
            f"{ref.runner} top-1 {100 * ref.top1:.2f}% is below the expected {expect_top1:.2f}% - {max_drop:g} points"
        )
    for r in report.results[1:]:
        if r.drop_points > max_drop:
            failures[r.runner] = f"{r.runner} loses {r.drop_points:.2f} points of top-1 (> {max_drop:g})"
    return failures


def gate_failures(report: EvalReport, expect_top1: float | None, max_drop: float, *,
                  allow_skip: bool = False) -> list[str]:
    """Why the report fails the accuracy gate (`runner_failures`, then runners that could not run
    unless `allow_skip`); empty when it passes."""
    failures = list(runner_failures(report, expect_top1, max_drop).values())
    if report.skipped and not allow_skip:
        failures.append(f"runner(s) {sorted(report.skipped)} could not run (--allow-skip to accept that)")
    return failures


def apply_gate(report: EvalReport, expect_top1: float | None, max_drop: float, *, allow_skip: bool = False) -> list[str]:
    """`gate_failures`, recorded in the report: each runner's status and reason, and `gate`."""
    per_runner = runner_failures(report, expect_top1, max_drop)
    failures = gate_failures(report, expect_top1, max_drop, allow_skip=allow_skip)
    report.runner_status = runner_status([r.runner for r in report.results], report.skipped,
                                         {k: [v] for k, v in per_runner.items()})
    report.gate = {"expect_top1": expect_top1, "max_drop": max_drop, "allow_skip": allow_skip,
                   "failures": failures, "passed": not failures}
    return failures
