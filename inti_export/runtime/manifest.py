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

from inti_export.errors import EngineError, one_line
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
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> EngineManifest:
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise EngineError(f"{source} lacks fields {missing}: rebuild the engine with `inti-export trt`")
        fmt = data.get("format", MANIFEST_FORMAT)
        if not _is_int(fmt):
            raise EngineError(f"{source} has format {fmt!r}, not an integer: rebuild the engine with `inti-export trt`")
        if fmt > MANIFEST_FORMAT:
            raise EngineError(
                f"{source} has format {fmt}, newer than this inti-export reads"
                f" ({MANIFEST_FORMAT}): upgrade inti-export"
            )
        fields = {k: v for k, v in data.items() if k in names}
        _check_types(fields, source)
        return cls(**fields)

    def save(self, engine_path: str | os.PathLike) -> Path:
        path = manifest_path(engine_path)
        write_atomic(path, self.to_json() + "\n")
        return path

    @property
    def profile_batch(self) -> tuple[int, int, int]:
        """(min, opt, max) over the batch axis of the first input that has axes; (1, 1, 1) if none has."""
        for p in self.profiles:
            if p["min"]:
                return p["min"][0], p["opt"][0], p["max"][0]
        return 1, 1, 1

    def input_batch_range(self, name: str) -> tuple[int, int] | None:
        """(min, max) of input `name`'s batch axis; None for a scalar input or one without a profile."""
        for p in self.profiles:
            if p["input"] == name and p["min"]:
                return p["min"][0], p["max"][0]
        return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_shape(v: Any, dynamic: bool = False) -> bool:
    return isinstance(v, list) and all(_is_int(d) or (dynamic and d is None) for d in v)


def _is_records(v: Any, check) -> bool:
    return isinstance(v, list) and all(isinstance(r, dict) and check(r) for r in v)


def _profile_ok(p: dict) -> bool:
    shapes = [p.get(k) for k in ("min", "opt", "max")]
    return (isinstance(p.get("input"), str) and all(_is_shape(s) for s in shapes)
            and len({len(s) for s in shapes}) == 1)


def _tensor_ok(t: dict) -> bool:
    return isinstance(t.get("name"), str) and isinstance(t.get("dtype"), str) and _is_shape(t.get("shape"), True)


def _plugin_ok(p: dict) -> bool:
    return all(isinstance(p.get(k), str) for k in ("name", "namespace", "version", "sha256"))


# field -> (what it must be, check); the manifest is read from disk, so every consumer relies on these
_FIELD_CHECKS = {
    "engine_file": ("a string", lambda v: isinstance(v, str)),
    "engine_sha256": ("a string", lambda v: isinstance(v, str)),
    "engine_size": ("an integer", _is_int),
    "runtime": ("a string", lambda v: isinstance(v, str)),
    "runtime_version": ("a string", lambda v: isinstance(v, str)),
    "precision": ("a string", lambda v: isinstance(v, str)),
    "profiles": ("a list of {input, min, opt, max} with integer shapes of one rank",
                 lambda v: _is_records(v, _profile_ok)),
    "inputs": ("a list of {name, dtype, shape}", lambda v: _is_records(v, _tensor_ok)),
    "outputs": ("a list of {name, dtype, shape}", lambda v: _is_records(v, _tensor_ok)),
    "onnx_file": ("a string", lambda v: isinstance(v, str)),
    "onnx_sha256": ("a string", lambda v: isinstance(v, str)),
    "onnx_metadata": ("an object of strings", lambda v: isinstance(v, dict)
                      and all(isinstance(x, str) for x in v.values())),
    "compute_capabilities": ("a list of strings", lambda v: isinstance(v, list)
                             and all(isinstance(x, str) for x in v)),
    "compute_capabilities_source": ("a string", lambda v: isinstance(v, str)),
    "build_time_s": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "plugins": ("a list of {name, namespace, version, sha256}", lambda v: _is_records(v, _plugin_ok)),
    "build": ("an object", lambda v: isinstance(v, dict)),
    "network_summary": ("an object", lambda v: isinstance(v, dict)),
    "network_layers": ("a list", lambda v: isinstance(v, list)),
}


def _check_types(fields: dict[str, Any], source: str) -> None:
    for name, value in fields.items():
        what, ok = _FIELD_CHECKS.get(name, (None, None))
        if ok is not None and not ok(value):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise EngineError(f"{source} has {name}={shown}, not {what}: rebuild the engine with `inti-export trt`")


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
        raise EngineError(f"manifest {path} is not readable JSON ({one_line(e)}): rebuild the engine") from e
    if not isinstance(data, dict):
        raise EngineError(f"manifest {path} is not a JSON object: rebuild the engine")
    return EngineManifest.from_dict(data, source=f"manifest {path}")
