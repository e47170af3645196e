"""What embeds the clips: an artifact (`model.onnx`, `model.engine`) or a preset, and its runner.

The preprocessing comes from the artifact's own `inti.*` metadata (an engine's manifest carries
its ONNX's), so the clips match what the model was exported for. A preset runs on the PyTorch
runner; export it with `inti-export onnx` to run it on ONNX Runtime or TensorRT.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from inti_export.corpus.names import is_utf8, shown
from inti_export.errors import IntiExportError
from inti_export.video.preprocess import Preprocess
from inti_export.vocab import RunnerKind

ENGINE_SUFFIXES = (".engine", ".plan")
_ONNX_RUNNERS = (RunnerKind.ort.value, RunnerKind.ort_cuda.value, RunnerKind.ov.value)
_TORCH_RUNNERS = (RunnerKind.torch.value, RunnerKind.torch_compile.value, RunnerKind.torch_kernel.value)


@dataclass(frozen=True)
class ModelSource:
    """`artifact` or `preset` (+ `checkpoint`), the runner kind, and its CPU threads (None: all)."""

    artifact: Path | None = None
    preset: str | None = None
    checkpoint: Path | None = None
    runner: str | None = None  # None: ort for .onnx, trt for an engine, torch for a preset
    threads: int | None = None
    device: str = "cpu"  # the PyTorch runner's device

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
        if self.artifact.is_dir():
            raise IntiExportError(f"--artifact {shown(self.artifact)} is a directory: pass a model.onnx or model.engine")
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

            return sha256_file(self.artifact)
        from inti_export.exporter.onnx_export import sha256_state_dict

        return sha256_state_dict(self.model())

    @functools.cache  # noqa: B019 - one model per source in a process; sources are few and frozen
    def model(self):
        from inti_export.models import create_model

        return create_model(self.preset, checkpoint=self.checkpoint)

    def make_runner(self):
        """A fresh, inactive Runner (bench's runner factory, so every command builds them alike)."""
        from inti_export.runtime.factory import make_runner

        model = self.model() if self.preset is not None else None
        onnx = None if self.is_engine else self.artifact
        engine = self.artifact if self.is_engine else None
        return make_runner(self.kind, model, onnx, engine, self.device, self.threads, "fp32")
