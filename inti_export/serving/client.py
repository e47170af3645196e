"""A tritonclient client: encoded videos to the ensemble, or decoded clips to the model, over HTTP or gRPC."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import IntiExportError, RuntimeUnavailableError, one_line


class ClientError(IntiExportError, RuntimeError):
    """The server could not be reached or refused a request."""


@dataclass
class VideoResult:
    """One video's answer: its outputs (or the server's error) and top-k labels when asked."""

    video: str
    outputs: dict[str, list] = field(default_factory=dict)
    labels: list[dict[str, Any]] = field(default_factory=list)  # [{label, index, score}]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"video": self.video}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["outputs"] = self.outputs
            if self.labels:
                out["labels"] = self.labels
        return out


class TritonClient:
    """`url` is `http://host:port`, `grpc://host:port`, or `host:port` (HTTP)."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        self.protocol, _, address = url.partition("://") if "://" in url else ("http", "", url)
        if self.protocol not in ("http", "grpc") or not address:
            raise ClientError(f"server URL {url!r} is not http://HOST:PORT or grpc://HOST:PORT")
        try:
            if self.protocol == "http":
                import tritonclient.http as tc
            else:
                import tritonclient.grpc as tc
            from tritonclient.utils import InferenceServerException
        except ImportError as e:
            raise RuntimeUnavailableError(
                f"the client needs tritonclient ({e}): pip install 'inti-export[serve]'"
            ) from e
        self.tc, self._error = tc, InferenceServerException
        self.url = url
        kwargs = {"network_timeout": timeout, "connection_timeout": timeout} if self.protocol == "http" else {}
        self.client = tc.InferenceServerClient(address.rstrip("/"), **kwargs)

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._error as e:
            raise ClientError(f"{what} on {self.url}: {one_line(e.message() or e)}") from e
        except (OSError, ConnectionError) as e:
            raise ClientError(
                f"cannot reach the server at {self.url} ({one_line(e)}): is `inti-export serve` running?"
            ) from e

    def model_names(self) -> list[str]:
        index = self._call("repository index", self.client.get_model_repository_index)
        entries = index if self.protocol == "http" else [{"name": m.name, "state": m.state} for m in index.models]
        return [m["name"] for m in entries if m.get("state") in ("READY", None)]

    def config(self, model: str) -> dict[str, Any]:
        if self.protocol == "http":
            return self._call(f"model {model!r}", self.client.get_model_config, model)
        return self._call(f"model {model!r}", self.client.get_model_config, model, as_json=True)["config"]

    def default_model(self) -> str:
        names = self.model_names()
        ensembles = [n for n in names if n.endswith("_ensemble")]
        if len(ensembles) == 1:
            return ensembles[0]
        raise ClientError(f"the server at {self.url} serves {names}: pick one with --model")

    def infer(self, model: str, inputs: dict[str, np.ndarray], top_k: int = 0, labelled: tuple[str, ...] = ()):
        """{output: array}; `labelled` outputs come back as Triton's classification strings when top_k > 0."""
        tc = self.tc
        feeds = []
        for name, array in inputs.items():
            dtype = "BYTES" if array.dtype == object else _TRITON_DTYPE[np.dtype(array.dtype).name]
            feed = tc.InferInput(name, list(array.shape), dtype)
            if self.protocol == "http":
                feed.set_data_from_numpy(array, binary_data=True)
            else:
                feed.set_data_from_numpy(array)
            feeds.append(feed)
        config = self.config(model)
        outputs = []
        for o in config.get("output", []):
            k = top_k if (top_k and o["name"] in labelled) else 0
            outputs.append(tc.InferRequestedOutput(o["name"], class_count=k))
        result = self._call(f"model {model!r}", self.client.infer, model, feeds, outputs=outputs)
        return {o["name"]: result.as_numpy(o["name"]) for o in config.get("output", [])}


_TRITON_DTYPE = {
    "float32": "FP32",
    "float16": "FP16",
    "float64": "FP64",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
}


def _feed_for(config: dict[str, Any], video: Path) -> dict[str, np.ndarray]:
    """Encoded bytes for a TYPE_STRING input, else the clip decoded here with the model's own preprocessing."""
    (inp,) = config["input"]
    if inp["data_type"] == "TYPE_STRING":
        return {inp["name"]: np.array([[video.read_bytes()]], dtype=object)}  # (1, 1)
    from inti_export.video.decode import load_clip
    from inti_export.video.preprocess import Preprocess

    params = {k: v.get("string_value") for k, v in config.get("parameters", {}).items()}
    if "preprocess" not in params:
        raise ClientError(
            f"model {config['name']!r} takes clips but its config has no 'preprocess' parameter: use the ensemble"
        )
    pre = Preprocess(**json.loads(params["preprocess"]))
    return {inp["name"]: load_clip(video, pre)[None]}  # (1, T, 3, H, W)


def infer_videos(
    videos: list[str | os.PathLike], url: str, model: str | None = None, top_k: int = 0
) -> tuple[str, list[VideoResult]]:
    """(model name, one result per video). A server error on one video is recorded, not raised."""
    if top_k < 0:
        raise ClientError(f"top-k {top_k} must be 0 (no labels) or more")
    for video in map(Path, videos):
        if video.is_dir():
            raise ClientError(f"video {video} is a directory: pass video files")
        if not video.is_file():
            raise ClientError(f"video {video} does not exist")
    client = TritonClient(url)
    model = model or client.default_model()
    config = client.config(model)
    labelled = tuple(o["name"] for o in config.get("output", []) if o.get("label_filename"))
    if top_k and not labelled:
        raise ClientError(f"--top-k needs a labelled output, and model {model!r} has none (it outputs an embedding)")
    results = []
    for video in map(Path, videos):
        result = VideoResult(video=str(video))
        try:
            out = client.infer(model, _feed_for(config, video), top_k=top_k, labelled=labelled)
        except (ClientError, IntiExportError) as e:
            result.error = one_line(e)
        else:
            for name, array in out.items():
                if name in labelled and top_k:
                    result.labels = [_classification(entry) for entry in array.reshape(-1)]
                else:
                    result.outputs[name] = array[0].tolist()
        results.append(result)
    return model, results


def _classification(entry) -> dict[str, Any]:
    """Triton's "score:index:label" string -> {label, index, score}."""
    text = entry.decode() if isinstance(entry, bytes) else str(entry)
    score, index, *label = text.split(":", 2)
    return {"label": label[0] if label else index, "index": int(index), "score": float(score)}
