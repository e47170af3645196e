"""What embeds the clips: an artifact (`model.onnx`, `model.engine`) or a preset, and its runner.

The preprocessing comes from the artifact's own `inti.*` metadata (an engine's manifest carries
its ONNX's), so the clips match what the model was exported for. A preset runs on the PyTorch
runner; export it with `inti-export onnx` to run it on ONNX Runtime or TensorRT. A folder from
`inti-export onnx --stream` (stem.onnx + head.onnx) runs on ONNX Runtime as its two halves.

`stem_head()` gives the model cut at its first InTI layer (docs/stream.md) where the runner allows it:
a preset on the PyTorch runner, or the stream pair; `corpus.split` then computes each frame's stem once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from inti_export.corpus.names import is_utf8, shown
from inti_export.errors import IntiExportError
from inti_export.video.preprocess import Preprocess
from inti_export.vocab import HEAD_FILE, STEM_FILE, RunnerKind

ENGINE_SUFFIXES = (".engine", ".plan")
_ONNX_RUNNERS = (RunnerKind.ort.value, RunnerKind.ort_cuda.value, RunnerKind.ov.value)
_TORCH_RUNNERS = (RunnerKind.torch.value, RunnerKind.torch_compile.value, RunnerKind.torch_kernel.value)


def is_stream_pair(path: Path) -> bool:
    """A folder `inti-export onnx --stream` wrote: stem.onnx and head.onnx."""
    return path.is_dir() and (path / STEM_FILE).is_file() and (path / HEAD_FILE).is_file()


@dataclass(frozen=True)
class ModelSource:
    """`artifact` or `preset` (+ `checkpoint`), the runner kind, and its CPU threads (None: all)."""

    artifact: Path | None = None
    preset: str | None = None
    checkpoint: Path | None = None
    runner: str | None = None  # None: ort for .onnx, trt for an engine, torch for a preset
    threads: int | None = None
    device: str = "cpu"  # the PyTorch runner's device
    ov_hint: str | None = None  # OpenVINO's performance hint (None: the runner's default)
    ov_streams: int | None = None  # OpenVINO's stream count (None: the runner's default)

    def __post_init__(self) -> None:
        if (self.artifact is None) == (self.preset is None):
            raise IntiExportError("choose one of --artifact model.onnx|model.engine and --preset NAME")
        if self.checkpoint is not None and self.preset is None:
            raise IntiExportError("--checkpoint goes with --preset; an artifact already holds its weights")
        if self.threads is not None and (int(self.threads) != self.threads or self.threads < 1):
            raise IntiExportError(f"--threads={self.threads!r} must be a positive integer (omit it to use every core)")
        kind = self.kind
        if kind not in {k.value for k in RunnerKind}:
            raise IntiExportError(f"unknown runner {kind!r}; use one of {', '.join(k.value for k in RunnerKind)}")
        if self.preset is not None:
            if kind not in _TORCH_RUNNERS:
                raise IntiExportError(
                    f"--runner {kind} needs an artifact: export the preset with `inti-export onnx` (or `trt`)"
                    " and pass --artifact, or use --runner torch"
                )
            return
        if self.is_pair:
            if not is_utf8(self.artifact):
                raise IntiExportError(f"--artifact {shown(self.artifact)} is not a UTF-8 name, which ONNX Runtime"
                                      " cannot open: rename it")
            if kind != RunnerKind.ort.value:
                raise IntiExportError(
                    f"--runner {kind} cannot run the stream pair {shown(self.artifact)}; use --runner ort"
                )
            return
        if self.artifact.is_dir():
            raise IntiExportError(
                f"--artifact {shown(self.artifact)} is a directory with neither stem.onnx/head.onnx nor candidate.json:"
                " pass a model.onnx, model.engine, an `onnx --stream` folder or an `optimize` OUT/best folder"
            )
        if not self.artifact.is_file():
            raise IntiExportError(f"artifact {shown(self.artifact)} does not exist; pass a model.onnx or model.engine")
        if not is_utf8(self.artifact):  # ONNX Runtime and TensorRT take the path as UTF-8 text
            raise IntiExportError(
                f"--artifact {shown(self.artifact)} is not a UTF-8 name, which ONNX Runtime and TensorRT cannot"
                " open: rename it"
            )
        wanted = (RunnerKind.trt.value,) if self.is_engine else _ONNX_RUNNERS
        if kind not in wanted:
            raise IntiExportError(f"--runner {kind} cannot run {self.artifact.name}; use one of {', '.join(wanted)}")

    @property
    def is_pair(self) -> bool:
        return self.artifact is not None and is_stream_pair(self.artifact)

    @property
    def is_engine(self) -> bool:
        return self.artifact is not None and self.artifact.suffix.lower() in ENGINE_SUFFIXES

    @property
    def kind(self) -> str:
        if self.runner is not None:
            return str(getattr(self.runner, "value", self.runner))
        if self.preset is not None:
            return RunnerKind.torch.value
        return RunnerKind.trt.value if self.is_engine else RunnerKind.ort.value

    @property
    def gpu(self) -> bool:
        return self.kind in (RunnerKind.ort_cuda.value, RunnerKind.trt.value) or self.device.startswith("cuda")

    def metadata(self) -> dict:
        """The artifact's `inti.*` metadata (an engine's from its manifest)."""
        from inti_export.vocab import decode_metadata, read_metadata

        if self.is_pair:  # the head carries the model's inti.* metadata (docs/stream.md)
            return read_metadata(self.artifact / HEAD_FILE)
        try:
            if self.is_engine:
                from inti_export.runtime.manifest import load_manifest

                return decode_metadata(load_manifest(self.artifact).onnx_metadata)
            return read_metadata(self.artifact)
        except IntiExportError:
            raise
        except Exception as e:  # onnx raises its own types for a file that is not ONNX
            raise IntiExportError(f"cannot read {self.artifact} as ONNX ({e}); pass model.onnx or model.engine") from e

    def preprocess(self) -> Preprocess:
        """Frames, image size and normalisation the model expects."""
        from inti_export.video.preprocess import preprocess_for, preprocess_from_metadata

        if self.preset is not None:
            from inti_export.models.config import get_config

            return preprocess_for(get_config(self.preset))
        return preprocess_from_metadata(
            self.metadata(), self.artifact, "export it with `inti-export onnx`, or pass --preset"
        )

    def sha256(self) -> str:
        """The artifact's content hash; for a preset, the hash of the model's weights."""
        if self.artifact is not None:
            from inti_export.fileio import sha256_file

            # a pair: the head's hash, which names the stem's inside it (inti.stream.stem_sha256)
            return sha256_file(self.artifact / HEAD_FILE if self.is_pair else self.artifact)
        from inti_export.exporter.onnx_export import sha256_state_dict

        return sha256_state_dict(self.model())

    @functools.cache  # noqa: B019 - one model per source in a process; sources are few and frozen
    def model(self):
        from inti_export.models import create_model

        return create_model(self.preset, checkpoint=self.checkpoint)

    def make_runner(self):
        """A fresh, inactive Runner (bench's runner factory, so every command builds them alike)."""
        from inti_export.runtime.factory import make_runner

        if self.is_pair:
            raise IntiExportError(f"{shown(self.artifact)} is a stream pair: it runs as stem and head (stem_head())")
        model = self.model() if self.preset is not None else None
        onnx = None if self.is_engine else self.artifact
        engine = self.artifact if self.is_engine else None
        if self.kind == RunnerKind.ov.value and (self.ov_hint or self.ov_streams):
            from inti_export.runtime.ov_runner import OvRunner

            return OvRunner(onnx, threads=self.threads, hint=self.ov_hint or "latency", streams=self.ov_streams)
        return make_runner(self.kind, model, onnx, engine, self.device, self.threads, "fp32")

    @property
    def can_split(self) -> bool:
        """Whether the runner can run the stem and the head apart: the PyTorch runner, or a stream pair."""
        return self.is_pair or (self.preset is not None and self.kind == RunnerKind.torch.value)

    def stem_head(self):
        """The model cut at its first InTI layer (a `runtime.stream.StemHead`), or None where it cannot be."""
        from inti_export.runtime.stream import OrtStemHead, TorchStemHead

        if self.is_pair:
            return OrtStemHead(self.artifact, threads=self.threads)
        if self.can_split:
            return TorchStemHead(self.model(), device=self.device)
        return None
