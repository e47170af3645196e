"""What `stream` runs (docs/stream.md): `StreamConfig`, its checks, and the model it names.

    cfg = StreamConfig("rtsp://cam/1", artifact=Path("pair/"), av_options=("rtsp_transport=udp",))
    cfg.check()                     # one-line IntiExportError on a bad combination
    model = make_stem_head(cfg)     # ort (artifact), torch (preset), trt (artifact's engines)
    session = make_session(cfg)     # a local StreamSession, or a RemoteStreamSession with --url
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inti_export.errors import IntiExportError


@dataclass(frozen=True)
class StreamConfig:
    """The source and its options, the model (artifact folder, preset or served URL) and the pacing options."""

    source: str
    artifact: Path | None = None
    preset: str | None = None
    checkpoint: Path | None = None
    runner: str | None = None  # None: ort for an artifact, torch for a preset
    stride: int | None = None  # None: T // 2
    sample_every: int = 1
    realtime: bool = False
    drop: str | None = None  # None: latest for a live source or --realtime, none for a file
    max_queue: int | None = None  # None: T
    duration_s: float | None = None
    timeout_s: float = 10.0
    threads: int | None = None
    fmt: str | None = None  # --format: the demuxer (mpegts for a pipe, v4l2 for a device, ...)
    av_options: tuple[str, ...] = ()  # --av-option k=v, to av.open(options=...)
    reconnect: int = 0  # re-open a live source up to N times after each loss
    labels: Path | None = None  # one class name a line, in the model's class order
    top_k: int = 0  # 0: the embedding/logits; K: the K best classes with scores
    url: str | None = None  # a served stream model (`triton-repo --stream`), instead of a local model
    model_name: str = "inti_stream"
    device: int = 0  # CUDA device of --runner trt

    def check(self) -> None:
        if self.url is not None:
            if self.artifact is not None or self.preset is not None or self.checkpoint is not None:
                raise IntiExportError("--url runs the served model: drop --artifact/--preset/--checkpoint, or drop --url")
            if self.runner is not None:
                raise IntiExportError(f"--runner {self.runner} picks a local runner; the served model runs on the server (--url)")
        else:
            self._check_local()
        if self.duration_s is not None and self.duration_s <= 0:
            raise IntiExportError(f"--duration {self.duration_s:g} must be positive")
        if self.timeout_s <= 0:
            raise IntiExportError(f"--timeout {self.timeout_s:g} must be positive")
        if self.reconnect < 0:
            raise IntiExportError(f"--reconnect {self.reconnect} must be 0 or more")
        if self.top_k < 0:
            raise IntiExportError(f"--top-k {self.top_k} must be 0 or more")
        if self.labels is not None and not self.top_k:
            raise IntiExportError("--labels names the classes of --top-k K: add --top-k (e.g. --top-k 5)")

    def _check_local(self) -> None:
        if (self.artifact is None) == (self.preset is None):
            raise IntiExportError("choose one of --artifact DIR (from `inti-export onnx --stream`), --preset NAME"
                                  " and --url http://HOST:PORT")
        if self.checkpoint is not None and self.preset is None:
            raise IntiExportError("--checkpoint goes with --preset; an artifact already holds its weights")
        runner = self.runner_kind
        if runner not in ("ort", "torch", "trt"):
            raise IntiExportError(f"--runner {runner} is not a stream runner; use ort, torch or trt")
        if self.preset is not None and runner != "torch":
            raise IntiExportError(f"--runner {runner} needs --artifact: export with `inti-export onnx --stream -o DIR`")
        if self.artifact is not None and runner == "torch":
            raise IntiExportError(f"--runner torch cannot run the ONNX pair in {self.artifact}; use --runner ort or trt")

    @property
    def runner_kind(self) -> str:
        if self.url is not None:
            return "triton"
        return self.runner or ("ort" if self.artifact is not None else "torch")


def make_stem_head(cfg: StreamConfig):
    """The stem/head pair of `cfg`: ONNX Runtime or TensorRT on an artifact folder, PyTorch on a preset."""
    from inti_export.runtime.stream import OrtStemHead, TorchStemHead, TrtStemHead, load_stream_artifact

    if cfg.artifact is not None and cfg.runner_kind == "trt":
        from inti_export.jobs.stream_engine import HEAD_ENGINE, STEM_ENGINE, load_engine_pair
        from inti_export.runtime.trt.loader import load_trt_module

        load_trt_module()  # without TensorRT: one line naming what to install, before anything else
        if (cfg.artifact / STEM_ENGINE).is_file() and (cfg.artifact / HEAD_ENGINE).is_file():
            load_engine_pair(cfg.artifact)  # the two engines come from one export (partner sha256), before the GPU
        return TrtStemHead(cfg.artifact, device=cfg.device)  # a missing engine: how to build it
    if cfg.artifact is not None:
        return OrtStemHead(load_stream_artifact(cfg.artifact), threads=cfg.threads)
    from inti_export.models import create_model

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    return TorchStemHead(create_model(cfg.preset, checkpoint=cfg.checkpoint))


def make_session(cfg: StreamConfig):
    """(session, preprocess): a local `StreamSession` on `make_stem_head`, or with --url the served one."""
    from inti_export.video.preprocess import Preprocess, preprocess_for, preprocess_from_metadata

    if cfg.url is not None:
        try:
            from inti_export.serving.stream_client import RemoteStreamSession
        except ImportError as e:
            raise IntiExportError(f"--url needs the stream client (inti_export.serving.stream_client): {e}") from e
        from inti_export.models.config import CLIP_MEAN, CLIP_STD

        session = RemoteStreamSession(cfg.url, model=cfg.model_name, stride=cfg.stride, timeout_s=cfg.timeout_s)
        pre = getattr(session, "preprocess", None) or Preprocess(session.frames, session.image_size, CLIP_MEAN, CLIP_STD)
        return session, pre
    from inti_export.runtime.stream import StreamSession

    model = make_stem_head(cfg)
    stride = cfg.stride if cfg.stride is not None else max(1, model.frames // 2)
    session = StreamSession(model, stride)  # a bad stride fails here, before the source opens
    artifact = getattr(model, "artifact", None)
    if artifact is not None:
        pre = preprocess_from_metadata(artifact.meta, artifact.head_path)
    elif hasattr(model, "meta"):  # TensorRT: head.onnx's metadata from the engine's manifest
        pre = preprocess_from_metadata(model.meta, model.head_path)
    else:
        pre = preprocess_for(model.model.cfg)
    return session, pre


def read_class_labels(path: Path, classes: int, what: str) -> list[str]:
    """`classes.txt` (one name a line, blank lines ignored), refused unless it names every class of `what`."""
    if not classes:
        raise IntiExportError(f"--top-k needs a classifier, but {what} outputs an embedding (no class head);"
                              " use a model with classes (e.g. --preset task-inti) or drop --top-k")
    if path is None:
        return []
    if not Path(path).is_file():
        raise IntiExportError(f"labels file {path} does not exist; pass a text file with one class name a line")
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise IntiExportError(f"cannot read labels file {path}: {e}; pass a UTF-8 text file") from e
    if classes > 0 and len(lines) != classes:  # < 0: a served model that does not say (checked at the first window)
        raise IntiExportError(f"{path} has {len(lines)} labels but {what} has {classes} classes; give one name a class, in order")
    return lines
