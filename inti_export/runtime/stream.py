"""A stream session: frames in one at a time, one answer per window of T consecutive frames (docs/stream.md).

The model splits at its first InTI layer (docs/model.md, "Streams"): the **stem** (patch embedding and
the blocks before it) sees one frame at a time, so each frame's stem runs once, as the frame arrives,
into a ring of the last T stems; every S frames the **head** (first InTI layer to the output) runs on
the ring. A window is always T consecutive sampled frames: a frame whose index does not follow the
last one (dropped frames) empties the ring, which warms up again, and the gap is recorded.

The stem and head come from a `StemHead`: `TorchStemHead` (the model's `forward_stem`/`forward_head`)
`OrtStemHead` (the split ONNX pair from `inti-export onnx --stream`, checked by sha256) or `TrtStemHead`
(the pair's two TensorRT engines from `inti-export trt DIR`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inti_export.errors import InputShapeError, IntiExportError, one_line
from inti_export.video.live import Frame
from inti_export.vocab import (
    HEAD_FILE,
    HEAD_INPUT,
    META_FRAMES,
    META_IMAGE_SIZE,
    META_OUTPUTS,
    META_PART,
    META_PRESET,
    META_STEM_SHA,
    STEM_FILE,
    STEM_INPUT,
    STEM_OUTPUT,
)


class StemHead(Protocol):
    """The two halves of a model: `stem` (F, 3, H, W) -> (F, N, D), `head` (B, T, N, D) -> (B, out)."""

    name: str
    frames: int  # T
    image_size: int
    output_name: str
    classes: int  # 0: the head outputs an embedding; >0: logits over that many classes

    def stem(self, frames: np.ndarray) -> np.ndarray: ...

    def head(self, stems: np.ndarray) -> np.ndarray: ...


class TorchStemHead:
    """PyTorch (CPU, FP32 without TF32): the model's own `forward_stem` and `forward_head`."""

    def __init__(self, model, device: str = "cpu") -> None:
        import torch

        self.model = model.eval().to(device)
        self.device = torch.device(device)
        c = model.cfg
        self.name, self.frames, self.image_size = f"torch-{self.device.type}", c.frames, c.image_size
        self.output_name = model.output_name
        self.preset = c.name
        self.classes = c.num_classes

    def _run(self, fn, array: np.ndarray) -> np.ndarray:
        import torch

        from inti_export.runtime.torch_runner import exact_fp32

        with torch.inference_mode(), exact_fp32():
            return fn(torch.from_numpy(array).to(self.device)).float().cpu().numpy()

    def stem(self, frames: np.ndarray) -> np.ndarray:  # (F, 3, H, W) -> (F, N, D)
        return self._run(self.model.forward_stem, frames)

    def head(self, stems: np.ndarray) -> np.ndarray:  # (B, T, N, D) -> (B, out)
        return self._run(self.model.forward_head, stems)


@dataclass(frozen=True)
class StreamArtifact:
    """A checked split export: the two ONNX files and the head's metadata (preset, T, mean/std, cut)."""

    stem_path: Path
    head_path: Path
    meta: dict[str, Any]

    @property
    def frames(self) -> int:
        return int(self.meta[META_FRAMES])

    @property
    def image_size(self) -> int:
        return int(self.meta[META_IMAGE_SIZE])


def load_stream_artifact(directory: str | Path) -> StreamArtifact:
    """`directory`'s stem.onnx and head.onnx, refused unless the head was exported with this very stem."""
    from inti_export.fileio import sha256_file
    from inti_export.vocab import read_metadata

    d = Path(directory)
    stem, head = d / STEM_FILE, d / HEAD_FILE
    if not d.is_dir():
        raise IntiExportError(f"stream artifact {d} is not a directory; pass the folder `inti-export onnx --stream -o` wrote")
    for p in (stem, head):
        if not p.is_file():
            raise IntiExportError(f"{d} has no {p.name}; export the pair with `inti-export onnx --stream -o {d}`")
    try:
        stem_meta, head_meta = read_metadata(stem), read_metadata(head)
    except Exception as e:  # protobuf and onnx raise their own types
        raise IntiExportError(f"cannot read the ONNX pair in {d}: {one_line(e)}") from e
    if stem_meta.get(META_PART) != "stem" or head_meta.get(META_PART) != "head":
        raise IntiExportError(f"{d}: stem.onnx/head.onnx lack the {META_PART} metadata; re-export with --stream")
    want, got = head_meta.get(META_STEM_SHA), sha256_file(stem)
    if want != got:
        raise IntiExportError(
            f"{head} was exported with a stem of sha256 {str(want)[:12]}..., but {stem} has {got[:12]}...:"
            " the two halves come from different models; re-export both with `inti-export onnx --stream`"
        )
    return StreamArtifact(stem, head, head_meta)


class OrtStemHead:
    """ONNX Runtime (CPU): the split pair of `load_stream_artifact`, run by two `OrtRunner`s."""

    def __init__(self, artifact: StreamArtifact | str | Path, threads: int | None = None) -> None:
        from inti_export.runtime.ort_runner import OrtRunner

        self.artifact = artifact if isinstance(artifact, StreamArtifact) else load_stream_artifact(artifact)
        self.frames, self.image_size = self.artifact.frames, self.artifact.image_size
        self.output_name = self.artifact.meta[META_OUTPUTS][0]["name"]
        self.preset = self.artifact.meta.get(META_PRESET, "")
        self.name = "ort-cpu"
        self.classes = output_classes(self.artifact.meta)
        self._stem = OrtRunner(self.artifact.stem_path, threads=threads, name="ort-stem")
        self._head = OrtRunner(self.artifact.head_path, threads=threads, name="ort-head")
        self._stem.activate()
        self._head.activate()

    def stem(self, frames: np.ndarray) -> np.ndarray:  # (F, 3, H, W) -> (F, N, D)
        return self._stem.infer({STEM_INPUT: frames})[STEM_OUTPUT]

    def head(self, stems: np.ndarray) -> np.ndarray:  # (B, T, N, D) -> (B, out)
        return self._head.infer({HEAD_INPUT: stems})[self.output_name]


def output_classes(meta: dict[str, Any]) -> int:
    """How many classes a head's `inti.outputs` metadata says it scores (0: an embedding, no classifier)."""
    out = (meta.get(META_OUTPUTS) or [{}])[0]
    return int(out["shape"][-1]) if out.get("name") == "logits" and out.get("shape") else 0


class TrtStemHead:
    """TensorRT: `stem.engine` and `head.engine` in `directory` (built by `inti-export trt DIR` from the pair),
    run by two `TrtRunner`s on CUDA device `device`. The TensorRT module is checked first, so a machine
    without one is told what to install before anything else. Pair checks (partner sha256) are the
    caller's (`jobs.stream_engine.load_engine_pair`)."""

    def __init__(self, directory: str | Path, device: int = 0, runtime: str | None = None) -> None:
        from inti_export.runtime.trt.loader import load_trt_module
        from inti_export.runtime.trt.runner import TrtRunner
        from inti_export.vocab import decode_metadata

        load_trt_module(runtime or "auto")  # RuntimeUnavailableError naming the pip extra
        d = Path(directory)
        engines = d / "stem.engine", d / "head.engine"
        for p in engines:
            if not p.is_file():
                raise IntiExportError(f"{d} has no {p.name}; build the pair's engines with `inti-export trt {d}`")
        self._stem = TrtRunner(engines[0], runtime=runtime, device=device)
        self._head = TrtRunner(engines[1], runtime=runtime, device=device)
        self._stem.activate()
        try:
            self._head.activate()
        except BaseException:
            self._stem.deactivate()
            raise
        meta = decode_metadata(self._head.manifest.onnx_metadata)  # head.onnx's inti.* metadata
        self.meta, self.head_path = meta, engines[1]
        self.frames, self.image_size = int(meta[META_FRAMES]), int(meta[META_IMAGE_SIZE])
        self.output_name = meta[META_OUTPUTS][0]["name"]
        self.preset = meta.get(META_PRESET, "")
        self.classes = output_classes(meta)
        self.name = f"trt-cuda:{device}"
        # the host dtype each engine takes (float32, or float16 for an engine with FP16 inputs)
        self._dtypes = {r: {t.name: t.dtype for t in r.input_specs()} for r in (self._stem, self._head)}

    def stem(self, frames: np.ndarray) -> np.ndarray:  # (F, 3, H, W) -> (F, N, D)
        x = np.ascontiguousarray(frames, self._dtypes[self._stem][STEM_INPUT])
        return self._stem.infer({STEM_INPUT: x})[STEM_OUTPUT].astype(np.float32, copy=False)

    def head(self, stems: np.ndarray) -> np.ndarray:  # (B, T, N, D) -> (B, out)
        x = np.ascontiguousarray(stems, self._dtypes[self._head][HEAD_INPUT])
        return self._head.infer({HEAD_INPUT: x})[self.output_name].astype(np.float32, copy=False)

    def close(self) -> None:
        self._head.deactivate()
        self._stem.deactivate()


@dataclass
class WindowResult:
    """One answer: window number, its first/last frame (index, pts), output (out,), timings in ms."""

    window: int
    first_frame: int
    last_frame: int
    first_pts: float | None
    last_pts: float | None
    output: np.ndarray
    stem_ms: float  # the stems of the frames since the previous window (S frames, or T after a warm-up)
    head_ms: float
    latency_ms: float  # from the arrival of the window's last frame to this answer
    dropped: int  # sampled frames missing from the stream so far

    def to_json(self, top_k: int = 0, labels: list[str] | None = None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "window": self.window, "first_frame": self.first_frame, "last_frame": self.last_frame,
            "first_pts": self.first_pts, "last_pts": self.last_pts,
            "stem_ms": round(self.stem_ms, 3), "head_ms": round(self.head_ms, 3),
            "latency_ms": round(self.latency_ms, 3), "dropped": self.dropped,
        }
        if top_k:
            order = np.argsort(-self.output, kind="stable")[:top_k]
            row["top_k"] = [{"label": labels[i] if labels else int(i), "score": float(self.output[i])} for i in order]
        else:
            row["embedding"] = [float(v) for v in self.output]
        return row


@dataclass
class Gap:
    """Frames missing between two sampled frames: the ring restarted at `next_frame`."""

    after_frame: int
    next_frame: int

    @property
    def missing(self) -> int:
        return self.next_frame - self.after_frame - 1


def check_stride(stride: int, frames: int, error: type[IntiExportError] = IntiExportError) -> int:
    """`stride` as an int when it is 1..T (`frames`); else `error`, one line."""
    if not 1 <= int(stride) <= frames:
        t = frames
        raise error(f"stride {stride} is outside 1..{t} (T = {t} frames per window); pick a stride in that range")
    return int(stride)


def check_frame(frame: Frame, image_size: int, last_index: int | None) -> Gap | None:
    """A frame a session can take: float32 (3, S, S), its index after `last_index`; the gap before it, if any."""
    s = image_size
    if frame.data.shape != (3, s, s) or frame.data.dtype != np.float32:
        got = f"{frame.data.dtype} {tuple(frame.data.shape)}"
        raise InputShapeError(f"frame {frame.index} is {got}; expected float32 (3, {s}, {s})")
    if frame.index < 0:
        raise IntiExportError(f"frame index {frame.index} is negative; sampled frames count from 0")
    if last_index is not None and frame.index <= last_index:
        raise IntiExportError(f"frame index {frame.index} does not follow {last_index}; frames must arrive in order")
    return Gap(last_index, frame.index) if last_index is not None and frame.index != last_index + 1 else None


class StreamSession:
    """Frames in (`push`), a `WindowResult` every `stride` frames once T consecutive frames are in."""

    def __init__(self, model: StemHead, stride: int, clock: Callable[[], float] = time.perf_counter) -> None:
        t = model.frames
        self.model, self.stride, self.frames, self.clock = model, check_stride(stride, t), t, clock
        self._ring: deque[tuple[Frame, np.ndarray]] = deque(maxlen=t)  # (frame, stem (N, D))
        self._since_restart = 0  # frames pushed since the ring last started
        self._last_index: int | None = None
        self._pending_stem_ms = 0.0
        self.stem_ms_total = 0.0  # every stem run, also those of frames whose window never came (a gap)
        self.windows = 0
        self.frames_in = 0
        self.dropped = 0
        self.gaps: list[Gap] = []
        self.restarts = 0  # ring restarts at a reconnect (`Frame.restart`): no window spans a reconnect

    def _restart(self) -> None:
        self._ring.clear()
        self._since_restart = 0
        self._pending_stem_ms = 0.0

    def push(self, frame: Frame) -> WindowResult | None:
        """Run `frame`'s stem into the ring; run the head when a window is due."""
        if gap := check_frame(frame, self.model.image_size, self._last_index):  # a gap: never span it
            self.gaps.append(gap)
            self.dropped += gap.missing
            self._restart()
        if getattr(frame, "restart", None) is not None:  # the source was re-opened before this frame
            self.restarts += 1
            self._restart()
        self._last_index = frame.index
        self.frames_in += 1
        start = self.clock()
        stem = self.model.stem(frame.data[None])[0]  # (N, D)
        elapsed = (self.clock() - start) * 1e3
        self._pending_stem_ms += elapsed
        self.stem_ms_total += elapsed
        self._ring.append((frame, stem))
        self._since_restart += 1
        if len(self._ring) < self.frames or (self._since_restart - self.frames) % self.stride:
            return None
        start = self.clock()
        out = self.model.head(np.stack([s for _, s in self._ring])[None])[0]  # (T, N, D) -> (out,)
        done = self.clock()
        first, last = self._ring[0][0], self._ring[-1][0]
        result = WindowResult(
            self.windows, first.index, last.index, first.pts, last.pts, out,
            self._pending_stem_ms, (done - start) * 1e3, (done - last.arrival) * 1e3, self.dropped,
        )
        self.windows += 1
        self._pending_stem_ms = 0.0
        return result

    def run(self, frames: Iterable[Frame]) -> Iterator[WindowResult]:
        """`push` each frame; yield the windows as they complete."""
        for frame in frames:
            if (result := self.push(frame)) is not None:
                yield result


def full_window_reference(model, frames: np.ndarray) -> np.ndarray:
    """What the whole model gives on one window of T frames (T, 3, H, W) -> (out,): the exactness reference."""
    import torch

    from inti_export.runtime.torch_runner import exact_fp32

    with torch.inference_mode(), exact_fp32():
        return model(torch.from_numpy(np.ascontiguousarray(frames))[None]).numpy()[0]
