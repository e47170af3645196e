"""`inti-export stream`: a live source or a file, one JSON answer per window (docs/stream.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors
from inti_export.vocab import DropPolicy, StreamRunner


def stream(
    source: Annotated[str, typer.Argument(help="A video file, an http(s)/rtsp/udp/tcp URL, a lavfi graph (lavfi:GRAPH),"
                                          " a V4L2 device (/dev/videoN) or - (standard input).")],
    artifact: Annotated[Path | None, typer.Option(help="Folder from `inti-export onnx --stream` (stem + head;"
                                                  " `inti-export trt DIR` adds the engines).")] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="A preset on the PyTorch runner.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Weights for --preset.")] = None,
    runner: Annotated[StreamRunner | None, typer.Option(help="ort (artifact, default), trt (artifact's engines) or torch"
                                                        " (preset, default).")] = None,
    url: Annotated[str | None, typer.Option(help="A served stream model (`triton-repo --stream`): http://HOST:PORT,"
                                            " instead of --artifact/--preset.")] = None,
    model_name: Annotated[str, typer.Option(help="The served stream model's name (--url).")] = "inti_stream",
    stride: Annotated[int | None, typer.Option(help="An answer every S sampled frames, 1..T (default T/2).")] = None,
    sample_every: Annotated[int, typer.Option(help="Keep every K-th decoded frame.", min=1)] = 1,
    realtime: Annotated[bool, typer.Option("--realtime", help="Read a file at its own frame rate, as if live.")] = False,
    drop: Annotated[DropPolicy | None, typer.Option(help="When behind: latest (default live) or none (default file).")] = None,
    max_queue: Annotated[int | None, typer.Option(help="Decoded frames waiting at most (default T).", min=1)] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after SEC seconds of the source.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait to connect, and for data, on a URL.")] = 10.0,
    reconnect: Annotated[int, typer.Option(help="Re-open a live source up to N times after each loss (back-off"
                                           " 0.5 s, 1 s, 2 s ... 8 s).", min=0)] = 0,
    av_option: Annotated[list[str] | None, typer.Option(help="KEY=VALUE for av.open (FFmpeg demuxer/protocol options,"
                                                        " e.g. rtsp_transport=udp); repeatable.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Force the demuxer (e.g. mpegts for -, v4l2 for a"
                                               " device).")] = None,
    labels: Annotated[Path | None, typer.Option(help="classes.txt, one name a line, for --top-k.")] = None,
    top_k: Annotated[int, typer.Option(help="Write the K best classes with scores instead of the logits.", min=0)] = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads for inference (default: all).", min=1)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="results.jsonl (default: stdout).")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the summary JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write latency over time (PNG) here.")] = None,
) -> None:
    """Run a video stream through the model: each frame's stem once, the head every STRIDE frames."""
    interrupted = None
    with cli_errors():
        from inti_export.fileio import atomic_output, check_output_path, write_json
        from inti_export.jobs.stream import StreamConfig, run_stream, summary_text

        local = [Path(source)] if source != "-" and Path(source).exists() else []  # never overwrite a file source
        inputs = [*local, artifact, checkpoint, labels]
        for path, what in ((output, "--output"), (report, "--report"), (plot, "--plot")):
            if path is not None:
                check_output_path(path, what, inputs=inputs, folders=[artifact] if artifact else ())
        cfg = StreamConfig(source, artifact=artifact, preset=preset, checkpoint=checkpoint,
                           runner=runner.value if runner else None, stride=stride, sample_every=sample_every,
                           realtime=realtime, drop=drop.value if drop else None, max_queue=max_queue,
                           duration_s=duration, timeout_s=timeout, threads=threads, fmt=fmt,
                           av_options=tuple(av_option or ()), reconnect=reconnect, labels=labels, top_k=top_k,
                           url=url, model_name=model_name)
        if output is None:
            summary = run_stream(cfg, sys.stdout, plot=plot)
        else:
            with atomic_output(output) as tmp, open(tmp, "w") as f:
                summary = run_stream(cfg, f, plot=plot)
        if report is not None:
            write_json(report, summary.to_dict())
        typer.echo(summary_text(summary), err=True)
        interrupted = summary.interrupted
    if interrupted is not None:
        raise typer.Exit(128 + interrupted)


def register(app: typer.Typer) -> None:
    app.command("stream")(stream)
