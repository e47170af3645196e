"""The served stream: a stateful Python-backend model that keeps each sequence's ring of stems (docs/serving.md, "Streams").

Triton's sequence batcher routes every request of a sequence (one correlation ID) to the same
instance, in order, and marks the first and last with the START and END controls. This model keeps,
per correlation ID, a `runtime.stream.StreamSession` over one shared `OrtStemHead` (the split pair
copied into the version folder, checked by sha256 with `load_stream_artifact`): each frame's stem
runs once as it arrives, the head every `stride` frames. A sequence's state is dropped on END, on a
new START with the same ID, and when it has been idle longer than `idle_s` (the sequence batcher's
own idle limit), or when more than `max_sequences` are held (the least recently seen first).

Contract, one row per frame (a request may carry several frames of one sequence, in order):
inputs `frame` (3, H, W) float32 preprocessed, `index` (1,) int64 the frame's sampled index
(-1: no frame, e.g. an END that only closes the sequence), `stride` (1,) int32 (0: the config's,
read on START only); outputs `window` (1,) int32 (the window number within the sequence, -1: no
window yet), `first_frame`/`last_frame` (1,) int64 (-1 without a window), `timing_ms` (2,) float32
(stem ms of the window's new frames, head ms; zeros without a window) and the head's output
(`embedding` or `logits`, (E,) float32, zeros without a window).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import IntiExportError, one_line

FRAME, INDEX, STRIDE = "frame", "index", "stride"
WINDOW, FIRST, LAST, TIMING = "window", "first_frame", "last_frame", "timing_ms"
START, END = "START", "END"  # the sequence batcher's control inputs (int32 0/1)
NO_FRAME = -1  # `index` of a request that carries no frame


class SequenceError(IntiExportError):
    """A request that does not fit its sequence: no state for its ID, a bad stride, frames out of order."""


@dataclass
class _Sequence:
    session: Any  # runtime.stream.StreamSession
    last_seen: float


def _parameters(args) -> tuple[dict, dict[str, str]]:
    import json

    config = json.loads(args["model_config"])
    return config, {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


class StreamModel:
    """Frames of many sequences in, one row per frame out: a window's output every `stride` frames."""

    def initialize(self, args) -> None:
        from inti_export.runtime.stream import OrtStemHead, load_stream_artifact

        config, params = _parameters(args)
        folder = Path(args["model_repository"]) / args["model_version"]
        instances = sum(int(g.get("count", 1)) for g in config.get("instance_group", [])) or 1
        threads = int(params.get("threads", "0")) or max(1, (os.cpu_count() or 1) // instances)
        out_dim = next(int(o["dims"][-1]) for o in config["output"] if o["name"] not in (WINDOW, FIRST, LAST, TIMING))
        self.setup(OrtStemHead(load_stream_artifact(folder), threads=threads), int(params["stride"]),
                   float(params["idle_s"]), int(params["max_sequences"]), out_dim)

    def setup(self, pair, stride: int, idle_s: float, max_sequences: int, out_dim: int, clock=time.monotonic) -> None:
        """The state without Triton: `pair` a `StemHead` (E = `out_dim` outputs), shared by every sequence."""
        self.pair, self.stride, self.idle_s, self.max_sequences = pair, stride, idle_s, max_sequences
        self.out_dim, self.clock = out_dim, clock
        self.sequences: dict[Any, _Sequence] = {}
        self.evicted = 0  # sequences dropped for idling or for room, not by END

    def execute(self, requests):
        import triton_python_backend_utils as pb

        responses = []
        for r in requests:
            start = _control(pb, r, START, pb.TRITONSERVER_REQUEST_FLAG_SEQUENCE_START)
            end = _control(pb, r, END, pb.TRITONSERVER_REQUEST_FLAG_SEQUENCE_END)
            frames = pb.get_input_tensor_by_name(r, FRAME).as_numpy()  # (b, 3, H, W)
            index = pb.get_input_tensor_by_name(r, INDEX).as_numpy()  # (b, 1)
            stride = pb.get_input_tensor_by_name(r, STRIDE)
            stride = int(stride.as_numpy().reshape(-1)[0]) if stride is not None else 0
            try:
                out = self.step(r.correlation_id(), frames, index.reshape(-1), start, end, stride)
            except IntiExportError as e:
                responses.append(pb.InferenceResponse(error=pb.TritonError(one_line(e))))
                continue
            responses.append(pb.InferenceResponse(output_tensors=[pb.Tensor(k, v) for k, v in out.items()]))
        return responses

    def step(self, key, frames: np.ndarray, index: np.ndarray, start: bool, end: bool, stride: int = 0):
        """One request of sequence `key`: frames (b, 3, H, W) with their indices (b,); {output: (b, ...)}."""
        from inti_export.runtime.stream import StreamSession
        from inti_export.video.live import Frame

        now = self.clock()
        self._evict(now)
        if start:
            session = StreamSession(self.pair, stride or self.stride)  # refuses a stride outside 1..T
            self.sequences[key] = _Sequence(session, now)
            self._make_room()
        seq = self.sequences.get(key)
        if seq is None:
            raise SequenceError(
                f"sequence {key} has no state here (it ended, idled past {self.idle_s:g} s, or never started):"
                " start a new sequence (sequence_start)"
            )
        seq.last_seen = now
        if len(frames) != len(index):
            raise SequenceError(f"{len(frames)} frames but {len(index)} indices in one request: send one index per frame")
        try:
            rows = [self._row(seq.session, Frame(int(i), np.ascontiguousarray(f, np.float32), arrival=time.perf_counter())
                              if i != NO_FRAME else None) for f, i in zip(frames, index, strict=True)]
        finally:
            if end:  # Triton has ended the sequence whatever happened: so does its state
                self.sequences.pop(key, None)
        return {name: np.stack([row[name] for row in rows]) for name in rows[0]} if rows else {}

    def _row(self, session, frame) -> dict[str, np.ndarray]:
        result = session.push(frame) if frame is not None else None
        if result is None:
            return {WINDOW: np.array([-1], np.int32), FIRST: np.array([-1], np.int64), LAST: np.array([-1], np.int64),
                    TIMING: np.zeros(2, np.float32), self.pair.output_name: np.zeros(self.out_dim, np.float32)}
        return {WINDOW: np.array([session.windows - 1], np.int32), FIRST: np.array([result.first_frame], np.int64),
                LAST: np.array([result.last_frame], np.int64),
                TIMING: np.array([result.stem_ms, result.head_ms], np.float32),
                self.pair.output_name: np.asarray(result.output, np.float32)}

    def _evict(self, now: float) -> None:
        """Drop every sequence idle for longer than `idle_s` (Triton forgets them then too)."""
        for key in [k for k, s in self.sequences.items() if now - s.last_seen > self.idle_s]:
            del self.sequences[key]
            self.evicted += 1

    def _make_room(self) -> None:
        while len(self.sequences) > self.max_sequences:
            oldest = min(self.sequences, key=lambda k: self.sequences[k].last_seen)
            del self.sequences[oldest]
            self.evicted += 1

    def finalize(self) -> None:
        self.sequences.clear()


def _control(pb, request, name: str, flag: int) -> bool:
    """A sequence control: the batcher's control input when configured, else the request's flags."""
    tensor = pb.get_input_tensor_by_name(request, name)
    if tensor is not None:
        return bool(tensor.as_numpy().reshape(-1)[0])
    return bool(request.flags() & flag)
