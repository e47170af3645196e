"""What a served artifact is, read from the artifact itself: I/O names, dtypes, dims, batch, preprocessing.

An ONNX file gives its graph inputs and outputs (names, element types, dims) and the `inti.*`
metadata (frames, image size, normalisation, config); an engine gives its manifest
(`model.engine.json`: inputs, outputs, batch profile, plugins) and, through it, the metadata of the
ONNX it was built from. Nothing here is typed by hand.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inti_export import vocab
from inti_export.errors import IntiExportError
from inti_export.video.preprocess import Preprocess, preprocess_from_metadata

ONNX = "onnx"
ENGINE = "engine"

# numpy dtype name -> Triton data type (model_config.proto DataType)
TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "float64": "TYPE_FP64",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
    "object": "TYPE_STRING",
}
# ONNX TensorProto element type -> numpy dtype name
_ONNX_ELEM = {
    1: "float32",
    10: "float16",
    16: "bfloat16",
    11: "float64",
    3: "int8",
    2: "uint8",
    6: "int32",
    7: "int64",
    9: "bool",
}


class RepositoryError(IntiExportError, ValueError):
    """An artifact that cannot be served as asked, or a model repository that is not valid."""


@dataclass(frozen=True)
class Tensor:
    """One input or output: `dims` without the batch axis (Triton's convention when batching)."""

    name: str
    dtype: str  # numpy dtype name
    dims: tuple[int, ...]

    @property
    def triton_dtype(self) -> str:
        return TRITON_DTYPES[self.dtype]


@dataclass
class Artifact:
    """A model file ready to be copied into a repository, with everything its config needs."""

    path: Path
    kind: str  # ONNX or ENGINE
    inputs: list[Tensor]
    outputs: list[Tensor]
    batch: tuple[int, int, int] | None  # engine profile (min, opt, max); None for a dynamic-batch ONNX
    metadata: dict[str, Any]  # inti.* metadata, JSON-decoded
    manifest: Path | None  # the JSON beside the artifact, copied with it
    plugins: list[dict[str, Any]] = field(default_factory=list)
    runtime: str | None = None  # engines: "tensorrt" or "tensorrt-rtx"

    @property
    def frames(self) -> int:
        return int(self.metadata[vocab.META_FRAMES])

    @property
    def image_size(self) -> int:
        return int(self.metadata[vocab.META_IMAGE_SIZE])

    @property
    def preprocess(self) -> Preprocess:
        """The clip settings the model expects, from its `inti.*` metadata."""
        return preprocess_from_metadata(self.metadata, self.path, "export it with `inti-export onnx`")

    def preprocess_json(self) -> str:
        """`preprocess` as the JSON of a config.pbtxt parameter, read back by `Preprocess(**json.loads(...))`."""
        pre = self.preprocess
        return json.dumps({"frames": pre.frames, "image_size": pre.image_size, "mean": list(pre.mean), "std": list(pre.std)})

    @property
    def num_classes(self) -> int:
        cfg = self.metadata.get(vocab.META_CONFIG) or {}
        return int(cfg.get("num_classes") or 0) if isinstance(cfg, dict) else 0


def read_artifact(path: str | os.PathLike) -> Artifact:
    """An ONNX file (by content) or an engine with its manifest; a one-line RepositoryError otherwise."""
    path = Path(path)
    if path.is_dir():
        if (path / vocab.PAIR_MANIFEST).is_file():
            raise RepositoryError(f"artifact {path} is a directory holding a stream pair: pass --stream to serve it")
        raise RepositoryError(
            f"artifact {path} is a directory: pass a model.onnx, a model.engine, or an `optimize` OUT/best folder"
        )
    if not path.is_file():
        raise RepositoryError(f"artifact {path} does not exist: pass a model.onnx or a model.engine")
    with open(path, "rb") as f:
        head = f.read(64)
    manifest = path.with_name(path.name + ".json")
    if manifest.is_file() and _is_engine_manifest(manifest):
        artifact = _read_engine(path)
    elif path.suffix == ".onnx" or head[:1] == b"\x08":  # ONNX protobufs start with ir_version (field 1)
        artifact = _read_onnx(path)
    else:
        raise RepositoryError(
            f"{path} is neither an ONNX file nor an engine with a manifest ({manifest.name}):"
            " pass the output of `inti-export onnx` or `inti-export trt`"
        )
    _check_video_io(artifact)
    return artifact


def _is_engine_manifest(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "engine_sha256" in data


def _read_onnx(path: Path) -> Artifact:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise RepositoryError(f"{path} is not a readable ONNX file ({type(e).__name__}): re-export it") from e
    metadata = vocab.decode_metadata({p.key: p.value for p in model.metadata_props})
    if vocab.META_VERSION not in metadata:
        raise RepositoryError(
            f"{path} has no inti.* metadata, so its I/O meaning is unknown: export it with `inti-export onnx`"
        )
    initializers = {i.name for i in model.graph.initializer}

    def tensors(values) -> list[Tensor]:
        out = []
        for v in values:
            if v.name in initializers:
                continue
            t = v.type.tensor_type
            dtype = _ONNX_ELEM.get(t.elem_type)
            if dtype is None:
                raise RepositoryError(
                    f"{path}: tensor {v.name!r} has ONNX element type {t.elem_type}, which Triton cannot carry"
                )
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
            out.append(Tensor(v.name, dtype, dims))
        return out

    inputs, outputs = tensors(model.graph.input), tensors(model.graph.output)
    for t in inputs + outputs:
        if not t.dims or t.dims[0] != -1:
            raise RepositoryError(
                f"{path}: {t.name!r} has a static batch axis {t.dims}; Triton batching needs a dynamic one:"
                " export with --dynamic-batch"
            )
        if -1 in t.dims[1:]:
            raise RepositoryError(
                f"{path}: {t.name!r} has dynamic dims {t.dims} beyond the batch axis; export fixed sizes"
            )
    manifest = path.with_name(path.name + ".json")
    return Artifact(
        path=path,
        kind=ONNX,
        inputs=[Tensor(t.name, t.dtype, t.dims[1:]) for t in inputs],
        outputs=[Tensor(t.name, t.dtype, t.dims[1:]) for t in outputs],
        batch=None,
        metadata=metadata,
        manifest=manifest if manifest.is_file() else None,
    )


def _read_engine(path: Path) -> Artifact:
    from inti_export.errors import EngineError
    from inti_export.fileio import sha256_file
    from inti_export.runtime.manifest import load_manifest, manifest_path

    try:
        manifest = load_manifest(path)
    except EngineError as e:
        raise RepositoryError(str(e)) from e
    if path.stat().st_size != manifest.engine_size or sha256_file(path) != manifest.engine_sha256:
        raise RepositoryError(
            f"engine {path} does not match its manifest {manifest_path(path).name} (sha256/size differ):"
            " rebuild it with `inti-export trt`"
        )
    metadata = vocab.decode_metadata(manifest.onnx_metadata)
    if vocab.META_VERSION not in metadata:
        raise RepositoryError(
            f"engine {path} was built from an ONNX without inti.* metadata: rebuild from `inti-export onnx`"
        )

    def tensors(entries) -> list[Tensor]:
        out = []
        for e in entries:
            shape = list(e["shape"])
            if not shape or shape[0] is not None or None in shape[1:]:
                raise RepositoryError(
                    f"engine {path}: {e['name']!r} has shape {shape}; Triton batching needs (batch, fixed...)"
                )
            if e["dtype"] not in TRITON_DTYPES:
                raise RepositoryError(f"engine {path}: {e['name']!r} has dtype {e['dtype']}, which Triton cannot carry")
            out.append(Tensor(e["name"], e["dtype"], tuple(int(d) for d in shape[1:])))
        return out

    return Artifact(
        path=path,
        kind=ENGINE,
        inputs=tensors(manifest.inputs),
        outputs=tensors(manifest.outputs),
        batch=tuple(int(b) for b in manifest.profile_batch),
        metadata=metadata,
        manifest=manifest_path(path),
        plugins=list(manifest.plugins),
        runtime=manifest.runtime,
    )


def _check_video_io(artifact: Artifact) -> None:
    """One input named INPUT_NAME of (T, 3, H, W) float32, as the metadata says."""
    names = [t.name for t in artifact.inputs]
    if names != [vocab.INPUT_NAME]:
        raise RepositoryError(f"{artifact.path} has inputs {names}, expected [{vocab.INPUT_NAME!r}]: re-export it")
    video = artifact.inputs[0]
    try:
        want = (artifact.frames, 3, artifact.image_size, artifact.image_size)
    except (KeyError, TypeError, ValueError) as e:
        raise RepositoryError(
            f"{artifact.path}: inti.frames/inti.image_size metadata missing or invalid: re-export it"
        ) from e
    if video.dims != want or video.dtype != "float32":
        raise RepositoryError(
            f"{artifact.path}: input {video.name!r} is {video.dtype} {video.dims}, but its metadata says float32 {want}"
        )
    if not artifact.outputs:
        raise RepositoryError(f"{artifact.path} has no outputs")
