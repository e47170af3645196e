"""The Python-backend models a repository's `model.py` re-exports (runs inside Triton's stub process).

`EmbeddingModel` runs this project's own runner (OrtRunner, or TrtRunner for an engine) on the
batch Triton's dynamic batcher assembled; `VideoModel` turns encoded video bytes into the clip the
model expects with video/ (decode, preprocess), the same frames and normalisation as parity. Each request
that fails gets its own error response naming the problem; the others in the batch still succeed.
`triton_python_backend_utils` exists only inside the stub, so it is imported there.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from inti_export import vocab
from inti_export.errors import IntiExportError, one_line
from inti_export.serving.repository import VIDEO_BYTES


def _pb():
    import triton_python_backend_utils as pb_utils

    return pb_utils


def _parameters(args) -> tuple[dict, dict[str, str]]:
    config = json.loads(args["model_config"])
    params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
    return config, params


def instance_device(args, params: dict[str, str]) -> str:
    """"cuda:N" or "cpu": where Triton placed this instance (docs/serving.md, "The Python backend models").

    Triton passes each instance its `model_instance_kind` ("GPU", "CPU" or "MODEL") and
    `model_instance_device_id`; a KIND_MODEL instance (or an older Triton) falls back to the
    repository's `device` parameter.
    """
    kind = str(args.get("model_instance_kind", "")).upper()
    if kind == "GPU":
        device_id = str(args.get("model_instance_device_id", "0") or "0")
        if not device_id.isdigit():
            raise IntiExportError(f"Triton gave model_instance_device_id {device_id!r}, not a GPU index")
        return f"cuda:{int(device_id)}"
    if kind == "CPU":
        return "cpu"
    return "cuda:0" if params.get("device", "cpu").startswith("cuda") else "cpu"


class EmbeddingModel:
    """The config's one input (a video (B, T, 3, H, W) float32; for a stream's `_stem`/`_head` model,
    frames (F, 3, H, W) or stems (B, T, N, D)) in, the artifact's outputs out."""

    def initialize(self, args) -> None:
        config, params = _parameters(args)
        folder = Path(args["model_repository"]) / args["model_version"]
        artifact = folder / params["artifact"]
        device = instance_device(args, params)
        if params["runner"] == "trt":
            from inti_export.runtime.trt import TrtRunner

            if device == "cpu":
                raise IntiExportError(f"engine {artifact.name} runs only on a GPU: give it instance_group kind KIND_GPU")
            self.runner = TrtRunner(artifact, device=int(device.partition(":")[2]))
        else:
            instances = sum(int(g.get("count", 1)) for g in config.get("instance_group", [])) or 1
            threads = int(params.get("threads", "0")) or max(1, (os.cpu_count() or 1) // instances)
            if params["runner"] == "ov":  # an optimize choice on OpenVINO (serving/choice.py)
                from inti_export.runtime.ov_runner import OvRunner

                self.runner = OvRunner(artifact, threads=threads, hint=params.get("ov_hint") or "latency",
                                       streams=int(params.get("ov_streams", "0")) or None)
            else:
                from inti_export.runtime.ort_runner import OrtRunner

                self.runner = OrtRunner(artifact, device=device, threads=threads)
        self.runner.activate()
        self.outputs = [o["name"] for o in config["output"]]
        self.input = config["input"][0]["name"] if config.get("input") else vocab.INPUT_NAME

    def execute(self, requests):
        pb = _pb()
        clips = [pb.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]  # each (b, T, 3, H, W)
        sizes = [len(c) for c in clips]
        try:
            out = self.runner.infer({self.input: np.ascontiguousarray(np.concatenate(clips))})
        except IntiExportError as e:
            return [pb.InferenceResponse(error=pb.TritonError(one_line(e))) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            tensors = [pb.Tensor(name, np.ascontiguousarray(out[name][start : start + size])) for name in self.outputs]
            responses.append(pb.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def finalize(self) -> None:
        self.runner.deactivate()


def decode_video_bytes(data: bytes, pre) -> np.ndarray:
    """One clip (T, 3, H, W) float32 from an encoded video's bytes, by the shared clip code (`load_clip`)."""
    from inti_export.errors import VideoError
    from inti_export.video.decode import load_clip

    if not data:
        raise VideoError("video bytes are empty: send the encoded file's contents")
    fd, name = tempfile.mkstemp(suffix=".video")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            return load_clip(name, pre)
        except VideoError as e:  # name the request's bytes, not our temporary file
            raise VideoError(str(e).replace(f"'{name}'", "").replace(name, f"({len(data)} bytes)")) from e
    finally:
        os.unlink(name)


class VideoModel:
    """Encoded video bytes (b, 1) TYPE_STRING in, clips (b, T, 3, H, W) float32 out."""

    def initialize(self, args) -> None:
        from inti_export.video.preprocess import Preprocess

        _, params = _parameters(args)
        self.pre = Preprocess(**json.loads(params["preprocess"]))
        self._warm_up()

    def _warm_up(self) -> None:
        """Decode the smallest shipped video once, so the first request does not pay for imports."""
        from inti_export.errors import VideoError
        from inti_export.video.discover import find_videos, shipped_videos_dir

        try:
            videos = sorted(find_videos(shipped_videos_dir()), key=lambda p: p.stat().st_size)
        except VideoError:
            self.pre.transform()  # no sample videos: at least import open_clip and torch now
            return
        for path in videos:
            try:
                decode_video_bytes(path.read_bytes(), self.pre)
                return
            except VideoError:
                continue

    def execute(self, requests):
        pb = _pb()
        responses = []
        for request in requests:
            rows = pb.get_input_tensor_by_name(request, VIDEO_BYTES).as_numpy().reshape(-1)  # (b,) bytes
            try:
                clips = np.stack([decode_video_bytes(bytes(row), self.pre) for row in rows])  # (b, T, 3, H, W)
            except IntiExportError as e:
                responses.append(pb.InferenceResponse(error=pb.TritonError(f"video: {one_line(e)}")))
                continue
            responses.append(pb.InferenceResponse(output_tensors=[pb.Tensor(vocab.INPUT_NAME, clips)]))
        return responses
