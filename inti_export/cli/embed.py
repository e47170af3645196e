"""`inti-export embed`: a video corpus to Parquet embeddings, locally or on Ray (docs/corpus.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console
from inti_export.vocab import RunnerKind


def _progress_bar(out):
    """A rich progress bar and the callback that feeds it videos/s, clips/s and errors."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rates]}"),
                   TimeElapsedColumn(), console=out, transient=True)
    task = bar.add_task("embed", total=None, rates="")

    def update(p) -> None:
        s = max(p.elapsed_s, 1e-9)
        rates = f"{p.videos_done / s:.2f} videos/s  {p.clips / s:.1f} clips/s  {p.errors} errors"
        bar.update(task, completed=p.videos_done, total=p.videos_total, rates=rates)

    return bar, update


def embed(
    sources: Annotated[list[str], typer.Argument(help="Video files, folders (recursive), globs, .txt lists of paths.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder: Parquet parts, _errors.jsonl.")],
    artifact: Annotated[Path | None, typer.Option(
        help="model.onnx, model.engine, an `onnx --stream` folder, or an `optimize` OUT/best folder (its choice)."
    )] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="A preset on the PyTorch runner.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Weights for --preset.")] = None,
    runner: Annotated[
        RunnerKind | None, typer.Option(help="Runner (default: ort for .onnx, trt for engines, torch for presets).")
    ] = None,
    clips_per_video: Annotated[int | None, typer.Option(help="N evenly spaced clips per video (default 1).")] = None,
    stride: Annotated[int | None, typer.Option(help="Sliding windows of T frames every STRIDE frames instead.")] = None,
    batch: Annotated[int | None, typer.Option(
        help="Clips per inference batch (default: OUT/best's choice, else 1 on a CPU with <= 4 cores, 8 otherwise)."
    )] = None,
    no_split: Annotated[bool, typer.Option(
        "--no-split", help="Run the whole model per clip, not each frame's stem once (PyTorch, stream pairs)."
    )] = False,
    decode_workers: Annotated[int | None, typer.Option(help="Decoding processes (default: cores - 1).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for inference (default: all).")] = None,
    part_rows: Annotated[int, typer.Option(help="Rows per Parquet part (whole videos).")] = 4096,
    ray: Annotated[bool, typer.Option("--ray", help="Run on Ray Data (pip install 'inti-export[ray]').")] = False,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (implies --ray; default: local).")] = None,
    actors: Annotated[int, typer.Option(help="--ray: CPU inference actors (GPU runners: one per GPU).")] = 1,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any video failed.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """Embed every clip of a video corpus into Parquet; a re-run resumes where the last one stopped."""
    out = console()
    with cli_errors():
        from inti_export.corpus import Sampling, default_decode_workers, embed_local, embed_ray, make_job, resolve_settings
        from inti_export.corpus.best import best_dict
        from inti_export.fileio import write_json

        if clips_per_video is None and stride is None:
            clips_per_video = 1
        sampling = Sampling(clips_per_video=clips_per_video, stride=stride)
        chosen = resolve_settings(artifact, preset, checkpoint, runner, threads, batch)  # flags win over OUT/best
        workers = default_decode_workers() if decode_workers is None else decode_workers  # 0 is refused, not "default"
        job = make_job(sources, chosen.model, output, sampling, batch=chosen.batch, part_rows=part_rows,
                       decode_workers=workers, split=not no_split, settings_from=chosen.sources,
                       best=best_dict(chosen.best) if chosen.best else None)
        if report is not None:
            job.check_report(report, tuple(sources))  # not an input, not inside OUT (docs/corpus.md)
        if ray or address:
            result = embed_ray(job, address=address, actors=actors)
        else:
            bar, update = _progress_bar(out)
            with bar:
                result = embed_local(job, on_progress=update)
        if report is not None:
            write_json(report, result.to_dict())
    from inti_export.corpus.output import ERRORS_FILE

    _summary(out, result)
    if not result.embedded and not result.skipped:  # the output holds nothing for this corpus
        typer.echo(f"error: no video could be embedded; see {Path(result.output) / ERRORS_FILE}", err=True)
        raise typer.Exit(1)
    if strict and result.failed:
        raise typer.Exit(1)


def _summary(out, result) -> None:
    """Counts, and the first ten failed videos (names and reasons are `shown`: valid UTF-8)."""
    from rich.markup import escape

    from inti_export.corpus.output import ERRORS_FILE

    out.print(
        f"{result.engine}/{result.runner}: {result.embedded} videos embedded ({result.clips} clips,"
        f" {result.clips_per_s:.1f} clips/s), {result.skipped} already done, {result.failed} failed"
        f" -> {escape(result.output)}"
    )
    split = ", stems shared (--no-split to turn off)" if result.split else ""
    out.print(f"batch {result.batch} ({result.batch_source}){split}"
              + (f"; from {escape(result.best['folder'])}: {result.best['runner']} {result.best['precision']}"
                 if result.best else ""))
    for video, reason in list(result.errors.items())[:10]:
        out.print(f"[yellow]failed[/yellow] {escape(video)}: {escape(reason)}", soft_wrap=True)
    if result.failed > 10:
        out.print(f"... and {result.failed - 10} more in {escape(str(Path(result.output) / ERRORS_FILE))}")


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
