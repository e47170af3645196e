"""An `optimize` choice as the runtimes use it: OUT/best/candidate.json read once (docs/optimize.md, "Outputs").

`inti-export optimize` writes OUT/best/ (the chosen artifact, its manifest, `candidate.json`, `command.txt`).
`embed --artifact OUT/best` (corpus/best.py) and `triton-repo OUT/best` (serving/choice.py) both read it
here: the artifact inside best/, the runner, precision, INT8 variant, runner settings (threads, sessions,
OpenVINO hint/streams) and the batch the search measured fastest. Plain JSON: this layer sits below jobs/
and does not import optimize's report classes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inti_export.errors import IntiExportError, one_line
from inti_export.vocab import RunnerKind

CANDIDATE_FILE = "candidate.json"
TORCH_RUNNERS = (RunnerKind.torch.value, RunnerKind.torch_compile.value, RunnerKind.torch_kernel.value)


@dataclass(frozen=True)
class BestChoice:
    """What `optimize` chose: the artifact inside best/ and how it ran fastest."""

    artifact: Path
    runner: str
    precision: str
    batch: int | None = None  # the batch the search measured fastest (None: not recorded)
    variant: str | None = None  # the INT8 variant's name, e.g. int8-u8s8-pc-max
    settings: dict[str, Any] = field(default_factory=dict)  # threads, sessions, ov_hint, ov_streams
    folder: Path | None = None
    candidate: str = ""  # the candidate's id in report.json


def is_best_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding an `optimize` candidate.json."""
    return Path(path).is_dir() and (Path(path) / CANDIDATE_FILE).is_file()


def read_best(folder: str | os.PathLike, error: type[IntiExportError] = IntiExportError) -> BestChoice:
    """The choice in an `optimize` OUT/best/ folder; `error` (one line) for a folder that cannot be used."""
    folder = Path(folder)
    path = folder / CANDIDATE_FILE
    if not path.is_file():
        raise error(f"{folder} has no {CANDIDATE_FILE}: pass an `inti-export optimize` OUT/best folder")
    try:
        data = json.loads(path.read_text())
        c, batch = data["candidate"], data["choice"].get("batch")
        runner, precision = str(c["runner"]), str(c["precision"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise error(f"cannot read {path} ({one_line(e)}): rerun `inti-export optimize` to rewrite best/") from e
    if runner in TORCH_RUNNERS or not c.get("artifact"):
        raise error(
            f"the choice in {path} runs in PyTorch ({runner} {precision}) and has no ONNX or engine: use --preset"
            " (and --checkpoint), or rerun `inti-export optimize` with --runners ort,ov (or trt) to choose an artifact"
        )
    artifact = folder / Path(str(c["artifact"])).name
    if not artifact.is_file():
        raise error(f"{path} chose {artifact.name}, which is not in {folder}: rerun `inti-export optimize` to rewrite best/")
    settings = c.get("settings") if isinstance(c.get("settings"), dict) else {}
    return BestChoice(artifact, runner, precision, int(batch) if batch else None, c.get("variant"), dict(settings),
                      folder, str(c.get("id", "")))
