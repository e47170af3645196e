"""The JSON manifest written beside every engine (`model.engine.json`).

An engine file says nothing a human or a loader can check without TensorRT and a GPU; the manifest
does: which runtime and version built it, from which ONNX (hash and `inti.*` metadata), at which
precision, for which batch profile and GPUs, with which plugins, and the network's layers as the
parser produced them (so CI can check inlining and precision without deserializing the engine).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inti_export.errors import EngineError
from inti_export.fileio import write_atomic

MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".json"


def manifest_path(engine_path: str | os.PathLike) -> Path:
    """`model.engine` -> `model.engine.json`."""
    p = Path(engine_path)
    return p.with_name(p.name + MANIFEST_SUFFIX)


@dataclass
class EngineManifest:
    """What `build_engine` knows about the engine it wrote; see the module docstring."""

    engine_file: str  # file name, relative to the manifest
    engine_sha256: str
    engine_size: int
    runtime: str  # "tensorrt" or "tensorrt-rtx"
    runtime_version: str
    precision: str  # from the ONNX's `inti.precision`; "fp32" when absent
    profiles: list[dict[str, Any]]  # [{input, min, opt, max}] full shapes
    inputs: list[dict[str, Any]]  # [{name, dtype, shape}], None for the dynamic batch axis
    outputs: list[dict[str, Any]]
    onnx_file: str
    onnx_sha256: str
    onnx_metadata: dict[str, str]
    compute_capabilities: list[str]  # e.g. ["SM86"]; see compute_capabilities_source
    compute_capabilities_source: str  # "requested", "default" (runtime's portable set) or "build-gpu"
    build_time_s: float
    plugins: list[dict[str, Any]] = field(default_factory=list)  # [{name, namespace, version, sha256, files}]
    build: dict[str, Any] = field(default_factory=dict)  # workspace, optimization level, timing cache...
    network_summary: dict[str, Any] = field(default_factory=dict)
    network_layers: list[dict[str, Any]] = field(default_factory=list)
    format: int = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> "EngineManifest":
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise EngineError(f"{source} lacks fields {missing}: rebuild the engine with `inti-export trt`")
        if data.get("format", MANIFEST_FORMAT) > MANIFEST_FORMAT:
            raise EngineError(
                f"{source} has format {data['format']}, newer than this inti-export reads"
                f" ({MANIFEST_FORMAT}): upgrade inti-export"
            )
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, engine_path: str | os.PathLike) -> Path:
        path = manifest_path(engine_path)
        write_atomic(path, self.to_json() + "\n")
        return path

    @property
    def profile_batch(self) -> tuple[int, int, int]:
        """(min, opt, max) over the batch axis of the first input."""
        p = self.profiles[0]
        return p["min"][0], p["opt"][0], p["max"][0]


def load_manifest(engine_path: str | os.PathLike) -> EngineManifest:
    """Read the manifest beside `engine_path`; a one-line EngineError when it is missing or unreadable."""
    path = manifest_path(engine_path)
    if not path.is_file():
        raise EngineError(
            f"no manifest beside {engine_path} (expected {path}): rebuild the engine with `inti-export trt`"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EngineError(f"manifest {path} is not readable JSON ({e}): rebuild the engine") from e
    if not isinstance(data, dict):
        raise EngineError(f"manifest {path} is not a JSON object: rebuild the engine")
    return EngineManifest.from_dict(data, source=f"manifest {path}")
