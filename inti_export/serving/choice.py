"""An `optimize` choice as a Triton repository: OUT/best/candidate.json -> `RepoConfig` (docs/serving.md, "Serving
an optimize choice").

`repo_config_for_choice` is the one mapping from a chosen candidate (runner, precision, INT8 variant,
settings, batch) to a `RepoConfig`, used by `triton-repo OUT/best` here and by `optimize --triton-repo`
(jobs/optimize/outputs.py). What each backend honours:

- python backend, ORT (`OrtRunner`): instances = `sessions`, the `threads` parameter = threads per session;
- python backend, OpenVINO (`OvRunner`): instances = `sessions`, `threads`, `ov_hint`, `ov_streams`;
- onnxruntime backend: instances = `sessions`, `intra_op_thread_count` = threads (Triton's ORT backend);
- tensorrt backend / engines: instances = `sessions`; threads mean nothing to a GPU.

`max_batch_size` is the choice's batch (the batch `optimize` measured fastest) unless given, and the
dynamic batcher prefers it and the max.
"""

from __future__ import annotations

import os
from typing import Any

from inti_export.runtime.choice import BestChoice, read_best
from inti_export.serving.artifact import RepositoryError
from inti_export.serving.options import RepoConfig

GPU_RUNNERS = ("trt", "ort-cuda")
Choice = BestChoice  # the one reader: runtime/choice.py


def read_choice(folder: str | os.PathLike) -> BestChoice:
    """The choice in an `optimize` OUT/best/ folder; a one-line RepositoryError when it cannot be served."""
    return read_best(folder, error=RepositoryError)


def repo_config_for_choice(choice: Choice, max_batch: int | None = None, **given: Any) -> tuple[RepoConfig, list[str]]:
    """The RepoConfig that serves `choice` as it was measured, and notes saying what was honoured.

    `given`: RepoConfig fields set explicitly (flags), which win over the choice.
    """
    s = choice.settings
    backend = given.pop("backend", None) or "python"
    if backend == "onnxruntime" and choice.runner == "ov":
        raise RepositoryError(
            f"the choice runs on OpenVINO ({choice.artifact.name}); Triton's onnxruntime backend would not run it as"
            " measured: drop --backend (the python backend runs OpenVINO)"
        )
    top = max_batch or given.pop("max_batch", None) or choice.batch or 1
    preferred = tuple(sorted({b for b in (choice.batch or 1, top) if 1 < b <= top})) or (1,)
    fields: dict[str, Any] = {
        "backend": backend, "max_batch": top, "preferred_batch_sizes": preferred,
        "kind": "gpu" if choice.runner in GPU_RUNNERS else "cpu",
        "instances": int(s.get("sessions") or 1),
        "threads": int(s.get("threads") or 0) if choice.runner in ("ort", "ov") else 0,
        "runner": choice.runner if choice.runner == "ov" else None,
        "ov_hint": s.get("ov_hint"), "ov_streams": s.get("ov_streams"),
        "precision": choice.precision, "variant": choice.variant,
    }
    fields.update({k: v for k, v in given.items() if v is not None})
    config = RepoConfig(**fields)
    what = f"{choice.runner} {choice.variant or choice.precision}"
    honoured = [f"{config.instances} instance(s) (sessions)"]
    if config.threads and backend in ("python", "onnxruntime"):
        honoured.append(f"{config.threads} threads each")
    if choice.runner == "ov" and backend == "python":
        honoured.append(f"OpenVINO hint {config.ov_hint or 'latency'}, streams {config.ov_streams or 'auto'}")
    notes = [f"served the choice {what} ({choice.artifact.name}): {', '.join(honoured)}; max_batch_size"
             f" {config.max_batch}, preferred batch sizes {list(config.preferred_batch_sizes)}"]
    return config, notes


def write_best_repo(folder: str | os.PathLike, repo: str | os.PathLike, **given: Any):
    """`write_triton_repo` of the artifact in an `optimize` OUT/best/ folder, served as it was chosen."""
    from inti_export.serving.repository import write_triton_repo

    choice = read_choice(folder)
    config, notes = repo_config_for_choice(choice, **given)
    report = write_triton_repo(choice.artifact, repo, config)
    report.notes[:0] = notes
    return report
