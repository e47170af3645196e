"""Where embed's model and settings come from: the flags, an `optimize` OUT/best/ folder, or this machine.

`--artifact OUT/best` reads `best/candidate.json` (written by `inti-export optimize`, docs/optimize.md,
"Outputs") and embeds with the chosen artifact, runner, threads, OpenVINO hint/streams and batch; a flag
given explicitly wins over the choice. Each setting's origin (`vocab.SettingSource`) goes into the report.
The choice is read as JSON (corpus sits below jobs/ and does not import optimize's report classes).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inti_export.corpus.model import ModelSource, is_stream_pair
from inti_export.corpus.names import shown
from inti_export.errors import IntiExportError, one_line
from inti_export.vocab import RunnerKind, SettingSource

CANDIDATE_FILE = "candidate.json"
GPU_BATCH = 8  # a GPU fills with larger batches; the old fixed default
CPU_BATCH = 8  # a CPU with more than SMALL_CPU cores: the old default until measured otherwise
SMALL_CPU = 4  # cores
_TORCH = (RunnerKind.torch.value, RunnerKind.torch_compile.value, RunnerKind.torch_kernel.value)


def available_cores() -> int:
    """The cores this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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


def is_best_folder(path: Path) -> bool:
    return path.is_dir() and (path / CANDIDATE_FILE).is_file()


@dataclass(frozen=True)
class BestChoice:
    """What `optimize` chose, from OUT/best/candidate.json: the artifact inside best/ and its settings."""

    folder: Path
    candidate: str
    runner: str
    precision: str
    artifact: Path
    batch: int | None
    variant: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # threads, sessions, ov_hint, ov_streams

    def to_dict(self) -> dict[str, Any]:
        return {"folder": shown(self.folder), "candidate": self.candidate, "runner": self.runner,
                "precision": self.precision, "variant": self.variant, "artifact": shown(self.artifact),
                "batch": self.batch, "settings": self.settings}


def read_best(folder: Path) -> BestChoice:
    """The choice in `folder` (an `optimize` OUT/best/); one-line errors for a folder that cannot be used."""
    path = folder / CANDIDATE_FILE
    if not path.is_file():
        raise IntiExportError(
            f"--artifact {shown(folder)} is a directory with no {CANDIDATE_FILE} (an `optimize` OUT/best) and no"
            " stem.onnx/head.onnx (`onnx --stream`): pass one of those, or a model.onnx or model.engine"
        )
    try:
        data = json.loads(path.read_text())
        c, choice = data["candidate"], data["choice"]
        runner, precision = str(c["runner"]), str(c["precision"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise IntiExportError(
            f"cannot read {shown(path)} ({one_line(e)}): rerun `inti-export optimize` to rewrite best/"
        ) from e
    if runner in _TORCH or not c.get("artifact"):
        raise IntiExportError(
            f"the choice in {shown(path)} runs in PyTorch ({runner} {precision}) and has no artifact: embed with"
            " --preset (and --checkpoint), or rerun `inti-export optimize` with --runners ort,ov to choose an ONNX"
        )
    artifact = folder / Path(str(c["artifact"])).name
    if not artifact.is_file():
        raise IntiExportError(
            f"{shown(path)} chose {artifact.name}, which is not in {shown(folder)}: rerun `inti-export optimize` to"
            " rewrite best/"
        )
    settings = c.get("settings") or {}
    batch = choice.get("batch")
    return BestChoice(folder, str(c.get("id", "")), runner, precision, artifact, int(batch) if batch else None,
                      c.get("variant"), dict(settings) if isinstance(settings, dict) else {})


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

