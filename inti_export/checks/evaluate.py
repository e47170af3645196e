"""Accuracy against labels: top-1/top-5 of the PyTorch model and of its ONNX or engine artifacts.

Videos are decoded through `inti_export.video` (one clip per video, as parity does);
labels come from a `video,label` CSV (`inti_export.video.labels.labelled_clips`, docs/task.md).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import IntiExportError, ParityError, one_line
from inti_export.metrics import topk_accuracy
from inti_export.vocab import INPUT_NAME, package_versions

logger = logging.getLogger(__name__)


@dataclass
class Accuracy:
    """One runner's accuracy on the labelled clips."""

    runner: str
    top1: float
    top5: float
    correct1: int
    count: int


@dataclass
class EvalReport:
    """Accuracy of each runner on the same clips; `drop_points` is against the first (the reference)."""

    preset: str
    videos: str
    labels: str
    count: int
    results: list[Accuracy]
    skipped: dict[str, str] = field(default_factory=dict)
    onnx: str | None = None
    engine: str | None = None
    checkpoint: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def drop_points(self, runner: str) -> float:
        """Top-1 points lost by `runner` against the reference (positive: worse)."""
        by = {r.runner: r for r in self.results}
        if runner not in by:
            raise IntiExportError(f"no accuracy for runner {runner!r}; have {sorted(by)}")
        return 100.0 * (self.results[0].top1 - by[runner].top1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["drop_points"] = {r.runner: self.drop_points(r.runner) for r in self.results[1:]}
        return d


def _logits(runner, clips: np.ndarray, batch: int, output: str) -> np.ndarray:
    out = []
    for i in range(0, len(clips), batch):
        res = runner.infer({INPUT_NAME: np.ascontiguousarray(clips[i : i + batch], dtype=np.float32)})
        if output not in res:
            raise ParityError(f"{runner.name} returned outputs {sorted(res)}, not {output!r}: the artifact is not this model")
        out.append(np.asarray(res[output], dtype=np.float32))
    return np.concatenate(out)  # (K, C)


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

    An engine that cannot run here (no GPU, no TensorRT) is recorded in `skipped` with the reason.
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
    results = []
    for r in runners:
        try:
            with r:
                logits = _logits(r, clips, batch, model.output_name)
        except (IntiExportError, ImportError) as e:
            if r is runners[0]:
                raise
            skipped[r.name] = one_line(e)
            logger.warning("skipping runner %s: %s", r.name, skipped[r.name])
            continue
        top1 = topk_accuracy(logits, labels, 1)
        results.append(Accuracy(r.name, top1, topk_accuracy(logits, labels, 5), round(top1 * len(labels)), len(labels)))
    return EvalReport(
        preset=model.cfg.name, videos=str(videos), labels=str(labels_path), count=len(labels), results=results,
        skipped=skipped, onnx=str(onnx_path) if onnx_path else None, engine=str(engine_path) if engine_path else None,
        versions=package_versions(),
    )
