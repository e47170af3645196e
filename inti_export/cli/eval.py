"""`inti-export eval`: accuracy against labels; `inti-export task`: write a labelled task split."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console
from inti_export.errors import IntiExportError


def print_eval(report, out) -> None:
    from rich.table import Table

    table = Table(title=f"accuracy: {report.preset} on {report.count} labelled videos ({report.videos})")
    for col in ("runner", "top-1", "top-5", "correct", "drop (points)"):
        table.add_column(col, justify="left" if col == "runner" else "right")
    for i, r in enumerate(report.results):
        drop = "-" if i == 0 else f"{report.drop_points(r.runner):+.2f}"
        table.add_row(r.runner, f"{100 * r.top1:.2f}%", f"{100 * r.top5:.2f}%", f"{r.correct1}/{r.count}", drop)
    out.print(table)
    for name, reason in report.skipped.items():
        out.print(f"[yellow]skipped[/yellow] {name}: {reason}")


def eval_command(
    videos: Annotated[Path, typer.Option("--videos", help="Directory of labelled videos.")],
    checkpoint: Annotated[Path | None, typer.Option(help="InTI checkpoint (.safetensors) of the model.")] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="CSV `video,label` (default: VIDEOS/labels.csv); see docs/task.md.")
    ] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="Preset (default: read from the ONNX).")] = None,
    onnx: Annotated[Path | None, typer.Option("--onnx", help="Also evaluate this ONNX on ONNX Runtime CPU.")] = None,
    engine: Annotated[Path | None, typer.Option("--engine", help="Also evaluate this TensorRT engine (needs a GPU).")] = None,
    expect_top1: Annotated[
        float | None, typer.Option("--expect-top1", help="Fail if PyTorch top-1 (percent) is below this by more than "
                                   "--max-drop.", min=0, max=100)
    ] = None,
    max_drop: Annotated[
        float, typer.Option("--max-drop", help="Top-1 points an artifact may lose against PyTorch.", min=0, max=100)
    ] = 1.0,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")] = None,
    allow_skip: Annotated[
        bool, typer.Option("--allow-skip", help="Pass even if a requested runner (e.g. TensorRT without a GPU) could not run.")
    ] = False,
) -> None:
    """Top-1/top-5 accuracy against labels for the PyTorch model and its ONNX/engine; exit 1 if the gate fails."""
    out = console()
    with cli_errors():
        from inti_export.checks.evaluate import apply_gate, evaluate
        from inti_export.fileio import check_output_path, write_json
        from inti_export.jobs.inputs import check_input_files, check_inputs_exist, model_for, onnx_metadata
        from inti_export.models.config import get_config
        from inti_export.video.labels import labelled_clips

        labels = labels if labels is not None else videos / "labels.csv"
        for name, value in (("--expect-top1", expect_top1), ("--max-drop", max_drop)):
            if value is not None and not math.isfinite(value):  # nan passes typer's min/max
                raise IntiExportError(f"{name} {value}: give a number of percent points, 0 to 100")
        if preset is not None:
            get_config(preset)
        elif onnx is None:
            raise IntiExportError("no --preset and no --onnx to read it from: pass --preset NAME")
        check_inputs_exist(videos=videos)
        check_input_files(checkpoint=checkpoint, labels=labels, engine=engine)
        meta = onnx_metadata(onnx, what="--onnx") if onnx is not None else None
        if report is not None:  # never over an input, its manifest, or a file among the labelled videos
            check_output_path(report, "--report", inputs=[onnx, engine, checkpoint, labels], folders=[videos])
        model = model_for(preset, onnx, checkpoint, meta=meta)
        clips, y, _ = labelled_clips(model.cfg, videos, labels)
        result = evaluate(model, clips, y, videos=videos, labels_path=labels, onnx_path=onnx, engine_path=engine)
        result.checkpoint = str(checkpoint) if checkpoint else None
        failures = apply_gate(result, expect_top1, max_drop, allow_skip=allow_skip)
        if report is not None:
            write_json(report, result.to_dict())
    print_eval(result, out)
    if failures:
        typer.echo("eval: FAILED: " + "; ".join(failures), err=True)
        raise typer.Exit(1)
    out.print("[green]eval: passed[/green]")


def task_command(
    out_dir: Annotated[Path, typer.Argument(help="Existing empty-or-not directory to write videos and labels.csv into.")],
    split: Annotated[str, typer.Option("--split", help="train, val or test (each has its own seed).")] = "test",
    count: Annotated[int, typer.Option("--count", help="Number of videos (at most 100000).", min=1)] = 160,
) -> None:
    """Write a split of the motion-direction task (docs/task.md): real mp4 videos and labels.csv."""
    with cli_errors():
        from inti_export.tasks.motion import make_split

        labels = make_split(out_dir, split, count)
    typer.echo(f"wrote {count} {split} videos and {labels}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("task")(task_command)
