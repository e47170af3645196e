"""What `write_triton_repo` is asked for: `RepoConfig`, each value checked before any work.

Ranges follow Triton's `model_config.proto` (max_batch_size and an instance group's count are int32,
the dynamic batcher's queue delay a uint64), so a config is never refused only after the work
(docs/serving.md, "Writing a repository").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from inti_export import vocab
from inti_export.serving.artifact import RepositoryError
from inti_export.vocab import InstanceKind, ServingBackend

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
INT32_MAX, UINT64_MAX = 2**31 - 1, 2**64 - 1


@dataclass
class RepoConfig:
    """How `write_triton_repo` lays out the repository."""

    name: str | None = None  # default: the artifact's preset name
    backend: ServingBackend = ServingBackend.python
    max_batch: int | None = None  # default: the engine profile's max, 8 for an ONNX
    instances: int = 1
    kind: InstanceKind = InstanceKind.cpu
    video: bool = False
    labels: Path | None = None
    dynamic_batching: bool = True
    queue_delay_us: int = 2000
    warmup: bool = True
    preferred_batch_sizes: tuple[int, ...] = ()  # dynamic batcher's preferred sizes; () -> max/2 and max
    stream: bool = False  # the artifact is a stream pair folder: a stateful sequence model (serving/stream_repo.py)
    stride: int | None = None  # stream: an answer every `stride` frames by default (None: T // 2)
    sequence_idle_s: float = 60.0  # stream: a sequence idle this long is dropped (Triton's and the model's state)
    max_sequences: int = 16  # stream: sequences held at once; more wait in Triton's backlog
    threads: int = 0  # ORT/OpenVINO threads per instance (0: the host's cores / instances)
    runner: str | None = None  # python backend on an ONNX: "ort" (None) or "ov" (OpenVINO, an optimize choice)
    ov_hint: str | None = None  # OpenVINO performance hint (latency/throughput) for runner "ov"
    ov_streams: int | None = None  # OpenVINO NUM_STREAMS for runner "ov" (None: the hint decides)
    precision: str | None = None  # recorded in the config's parameters: the optimize choice's precision
    variant: str | None = None  # and its INT8 variant

    def __post_init__(self) -> None:
        self.backend = _enum(ServingBackend, self.backend, "backend")
        self.kind = _enum(InstanceKind, self.kind, "instance kind")
        if self.name is not None and not MODEL_NAME_RE.match(self.name):
            raise RepositoryError(f"model name {self.name!r} must be letters, digits, '_', '-', '.': pick another")
        if self.max_batch is not None and not 1 <= self.max_batch <= INT32_MAX:
            raise RepositoryError(
                f"max batch {self.max_batch} must be 1 to {INT32_MAX} (Triton's max_batch_size is an int32)"
            )
        if not 1 <= self.instances <= INT32_MAX:
            raise RepositoryError(f"instances {self.instances} must be 1 to {INT32_MAX} (Triton's count is an int32)")
        if not 0 <= self.queue_delay_us <= UINT64_MAX:
            raise RepositoryError(f"queue delay {self.queue_delay_us} us must be 0 to {UINT64_MAX}")
        if self.stride is not None and self.stride < 1:
            raise RepositoryError(f"stride {self.stride} must be at least 1 (and at most the model's T frames)")
        if not (0 < self.sequence_idle_s <= UINT64_MAX / 1e6):  # nan fails too
            raise RepositoryError(f"sequence idle limit {self.sequence_idle_s} s must be a positive number of seconds")
        if not 1 <= self.max_sequences <= INT32_MAX:
            raise RepositoryError(f"max sequences {self.max_sequences} must be 1 to {INT32_MAX}")
        if not 0 <= self.threads <= 4096:
            raise RepositoryError(f"threads {self.threads} must be 0 (the host's cores / instances) to 4096")
        if self.runner not in (None, "ort", "ov"):
            raise RepositoryError(f"runner {self.runner!r} cannot run inside the python backend: use ort or ov")
        if self.labels is not None:
            read_labels(self.labels)  # unreadable labels are refused before any work


def read_labels(path: str | os.PathLike) -> list[str]:
    """The non-empty lines of a labels file (UTF-8, a BOM accepted); a one-line RepositoryError otherwise."""
    path = Path(path)
    if path.is_dir():
        raise RepositoryError(f"labels file {path} is a directory: pass a text file, one label per line")
    if not path.is_file():
        raise RepositoryError(f"labels file {path} does not exist: pass a text file, one label per line")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise RepositoryError(f"cannot read labels {path}: {e}: save it as UTF-8 text, one label per line") from e
    return [line.strip() for line in text.splitlines() if line.strip()]


def _enum(kind, value, what):
    try:
        return kind(value)
    except ValueError as e:
        raise RepositoryError(f"unknown {what} {value!r}: choose {', '.join(vocab.values(kind))}") from e
