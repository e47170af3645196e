"""The `calibrate` job: convert_precision from videos or an .npz, then (optionally) a precision report.

    calibrate("m.onnx", "int8", videos="clips/", report="int8.md")   -> CalibrateResult

What `inti-export calibrate` runs (docs/precision.md); with `labels`, the report measures accuracy
against a labelled, held-out split (docs/task.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inti_export.calibration.backends import QUANTIZED, parse_target
from inti_export.calibration.data import load_calibration_data
from inti_export.calibration.precision import convert_precision
from inti_export.calibration.report import precision_report, write_report
from inti_export.errors import CalibrationError
from inti_export.fileio import check_output_path
from inti_export.video.labels import check_held_out, labelled_clips, labelled_videos
from inti_export.video.preprocess import model_preprocess
from inti_export.vocab import META_CONFIG, CalibrationBackend, CalibrationMethod, Int8Type, Precision, read_metadata


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
    activation_type: Int8Type | str = Int8Type.s8,
    weight_type: Int8Type | str = Int8Type.s8,
    per_channel: bool = True,
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
    precision = parse_target(precision)
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
                            activation_type=activation_type, weight_type=weight_type, per_channel=per_channel,
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

    model_preprocess(onnx_path)  # one line if the model is missing, unreadable or not inti-export's
    meta = read_metadata(onnx_path)
    if META_CONFIG not in meta:
        raise CalibrationError(f"{onnx_path} has no {META_CONFIG} metadata: accuracy against labels needs an ONNX"
                               " written by `inti-export onnx`")
    return config_from_dict(meta[META_CONFIG])
