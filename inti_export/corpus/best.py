"""Where embed's model and settings come from: the flags, an `optimize` OUT/best/ folder, or this machine.

`--artifact OUT/best` reads `best/candidate.json` (written by `inti-export optimize`, docs/optimize.md,
"Outputs") and embeds with the chosen artifact, runner, threads, OpenVINO hint/streams and batch; a flag
given explicitly wins over the choice. Each setting's origin (`vocab.SettingSource`) goes into the report.
The choice is read by runtime/choice.py, as `triton-repo OUT/best` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inti_export.corpus.model import ModelSource, is_stream_pair
from inti_export.corpus.names import shown
from inti_export.errors import IntiExportError
from inti_export.runtime.choice import CANDIDATE_FILE, BestChoice, is_best_folder
from inti_export.runtime.choice import read_best as read_choice
from inti_export.runtime.cpu import available_cores
from inti_export.vocab import RunnerKind, SettingSource

GPU_BATCH = 8  # a GPU fills with larger batches; the old fixed default
CPU_BATCH = 8  # a CPU with more than SMALL_CPU cores: the old default until measured otherwise
SMALL_CPU = 4  # cores


def machine_batch(gpu: bool, cores: int | None = None) -> int:
    """`--batch`'s default: 8 for a GPU runner; on the CPU, 1 with at most 4 cores, else 8.

    docs/benchmarks.md ("Embedding a corpus", "optimize on inti-b16"): on ONNX Runtime CPU with 2 cores,
    batch 1 was inti-b16's fastest per clip (0.276 clips/s against 0.253 at batch 2); a small CPU gains
    nothing from batching, and batch 1 lets decoding overlap inference most finely. A GPU needs a batch
    to fill it. `inti-export optimize` measures the best batch for a model and machine (then pass
    `--artifact OUT/best`).
    """
    if gpu:
        return GPU_BATCH
    return 1 if (cores or available_cores()) <= SMALL_CPU else CPU_BATCH


def read_best(folder: Path) -> BestChoice:
    """The choice in `folder` (an `optimize` OUT/best/, runtime/choice.py); one-line errors when unusable."""
    if not is_best_folder(folder):
        raise IntiExportError(
            f"--artifact {shown(folder)} is a directory with no {CANDIDATE_FILE} (an `optimize` OUT/best) and no"
            " stem.onnx/head.onnx (`onnx --stream`): pass one of those, or a model.onnx or model.engine"
        )
    return read_choice(folder)


def best_dict(best: BestChoice) -> dict[str, Any]:
    """The choice as embed's report records it."""
    return {"folder": shown(best.folder), "candidate": best.candidate, "runner": best.runner,
            "precision": best.precision, "variant": best.variant, "artifact": shown(best.artifact),
            "batch": best.batch, "settings": best.settings}


@dataclass
class EmbedSettings:
    """The model, the batch and where each setting came from (`vocab.SettingSource` values)."""

    model: ModelSource
    batch: int
    sources: dict[str, str]
    best: BestChoice | None = None

    @property
    def batch_source(self) -> str:
        return self.sources["batch"]


def resolve_settings(
    artifact: Path | None = None, preset: str | None = None, checkpoint: Path | None = None,
    runner: str | None = None, threads: int | None = None, batch: int | None = None, device: str = "cpu",
) -> EmbedSettings:
    """The flags (None: not given) merged with an `optimize` best/ folder passed as `artifact`; flags win.

    Without a best/ folder: the runner from the artifact's kind, threads from every core, and the batch
    from `machine_batch`.
    """
    flag, from_best = SettingSource.flag.value, SettingSource.best.value
    best = read_best(artifact) if artifact is not None and artifact.is_dir() and not is_stream_pair(artifact) else None
    sources: dict[str, str] = {}

    def pick(name: str, given, chosen):
        if given is not None:
            sources[name] = flag
            return given
        if chosen is not None:
            sources[name] = from_best
            return chosen
        sources[name] = SettingSource.default.value
        return None

    if best is None:
        model = ModelSource(artifact=artifact, preset=preset, checkpoint=checkpoint, runner=runner,
                            threads=pick("threads", threads, None), device=device)
        sources["runner"] = flag if runner is not None else SettingSource.default.value
    else:
        if preset is not None or checkpoint is not None:
            raise IntiExportError("--artifact OUT/best holds the model already: drop --preset/--checkpoint")
        s = best.settings
        model = ModelSource(
            artifact=best.artifact, runner=pick("runner", runner, best.runner), device=device,
            threads=pick("threads", threads, s.get("threads")),
            ov_hint=s.get("ov_hint") if (runner or best.runner) == RunnerKind.ov.value else None,
            ov_streams=s.get("ov_streams") if (runner or best.runner) == RunnerKind.ov.value else None,
        )
    value = pick("batch", batch, best.batch if best else None)
    if value is None:
        value = machine_batch(model.gpu)
        sources["batch"] = SettingSource.machine.value
    return EmbedSettings(model, value, sources, best)

