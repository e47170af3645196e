"""`inti-export triton-repo` (artifact -> Triton model repository), `serve` (a real tritonserver) and `infer`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console
from inti_export.vocab import InstanceKind, ServingBackend


def triton_repo(
    artifact: Annotated[Path, typer.Argument(help="model.onnx, model.engine, an optimize OUT/best folder, or with"
                                             " --stream an `onnx --stream` folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The model repository folder (created if missing).")],
    name: Annotated[str | None, typer.Option("--name", help="Model name (default: the preset; inti_stream).")] = None,
    backend: Annotated[
        ServingBackend | None, typer.Option("--backend", help="Triton backend that serves the model (default: python).")
    ] = None,
    max_batch: Annotated[
        int | None, typer.Option("--max-batch", help="max_batch_size (default: engine profile max, 8 for ONNX,"
                                 " the choice's batch for OUT/best).")
    ] = None,
    instances: Annotated[int | None, typer.Option("--instances", help="Model instances (default 1; OUT/best: sessions).")] = None,
    kind: Annotated[InstanceKind | None, typer.Option("--kind", help="Instance kind (default cpu).")] = None,
    video: Annotated[
        bool, typer.Option("--video", help="Also a <name>_video pre-processing model and a <name>_ensemble.")
    ] = False,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Class labels, one per line, for a class head.")
    ] = None,
    dynamic_batching: Annotated[
        bool, typer.Option("--dynamic-batching/--no-dynamic-batching", help="Triton's dynamic batcher.")
    ] = True,
    queue_delay_us: Annotated[int, typer.Option("--queue-delay-us", help="Dynamic batcher's max queue delay.")] = 2000,
    stream: Annotated[bool, typer.Option("--stream", help="A stateful stream model driven by Triton's sequence"
                                         " batcher, plus <name>_stem and <name>_head (docs/serving.md, Streams).")] = False,
    stride: Annotated[int | None, typer.Option("--stride", help="--stream: a window every S frames (default T/2).")] = None,
    sequence_idle_s: Annotated[
        float, typer.Option("--sequence-idle-s", help="--stream: a sequence idle this long is dropped.")
    ] = 60.0,
    max_sequences: Annotated[int, typer.Option("--max-sequences", help="--stream: sequences held at once.")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Write a Triton model repository for an artifact: config.pbtxt from its own metadata, warmup, ensemble.

    An `optimize` OUT/best folder is served as chosen: its precision, batch, sessions and threads.
    """
    from inti_export.runtime.choice import is_best_folder
    from inti_export.serving import RepoConfig, write_triton_repo
    from inti_export.serving.choice import write_best_repo

    given = {"name": name, "backend": backend, "max_batch": max_batch, "instances": instances, "kind": kind}
    common = {"video": video, "labels": labels, "dynamic_batching": dynamic_batching, "queue_delay_us": queue_delay_us}
    with cli_errors():
        if is_best_folder(artifact) and not stream:
            report = write_best_repo(artifact, output, **given, **common)
        else:
            config = RepoConfig(**{k: v for k, v in given.items() if v is not None}, **common, stream=stream,
                                stride=stride, sequence_idle_s=sequence_idle_s, max_sequences=max_sequences)
            report = write_triton_repo(artifact, output, config)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    out = console()
    for m in report.models:
        out.print(f"wrote {m['config']} ({m['backend']}, max_batch_size {m['max_batch_size']})")
    for note in report.notes:
        out.print(f"[yellow]note[/yellow]: {note}")
    out.print(f"serve it with: inti-export serve {report.repository}")


def serve(
    repository: Annotated[Path, typer.Argument(help="A model repository written by `inti-export triton-repo`.")],
    http_port: Annotated[int, typer.Option("--http-port", help="HTTP port on 127.0.0.1.")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port on 127.0.0.1.")] = 8001,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Prometheus metrics port on 127.0.0.1.")] = 8002,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for every model to be ready.")] = 300.0,
    log: Annotated[
        Path | None, typer.Option("--log", help="Keep the server's log here (default: a temporary file kept on failure).")
    ] = None,
    restarts: Annotated[
        int,
        typer.Option("--restarts", min=0, help="Times a server that dies is started again on the same ports (0: exit 1)."),
    ] = 3,
) -> None:
    """Run Triton Inference Server on a repository in the foreground; Ctrl-C stops it and every stub (exit 130).

    A server that dies is started again, at most --restarts times, then exit 1 (docs/serving.md, "Supervision").
    """
    from inti_export.errors import Interrupted
    from inti_export.serving.server import TritonServer

    with cli_errors():
        server = TritonServer(repository, http_port, grpc_port, metrics_port, ready_timeout=timeout, log_path=log)
        try:
            endpoints = server.start()
            typer.echo(f"serving {', '.join(server.models)} from {server.repository}")
            typer.echo(f"  HTTP    {endpoints.http}\n  gRPC    {endpoints.grpc}\n  metrics {endpoints.metrics}")
            typer.echo("Ctrl-C to stop", err=True)
            raise typer.Exit(server.supervise(restarts, report=lambda line: typer.echo(line, err=True)))
        except Interrupted as e:
            server.stop()
            typer.echo("stopped", err=True)
            raise typer.Exit(e.exit_code) from None
        finally:
            server.stop()


def infer(
    videos: Annotated[list[Path], typer.Argument(help="Video files.")],
    url: Annotated[str, typer.Option("--url", help="http://HOST:PORT or grpc://HOST:PORT.")] = "http://127.0.0.1:8000",
    model: Annotated[str | None, typer.Option("--model", help="Model to ask (default: the served *_ensemble).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Top-k labels from a labelled class head.", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Send videos to a served model; exit 1 if the server returns an error for any of them."""
    from inti_export.serving.client import infer_videos

    with cli_errors():
        model_name, results = infer_videos(videos, url, model, top_k)
    if as_json:
        typer.echo(json.dumps({"model": model_name, "results": [r.to_dict() for r in results]}, indent=1))
    else:
        for r in results:
            if r.error:
                typer.echo(f"{r.video}: error: {r.error}", err=True)
                continue
            for name, values in r.outputs.items():
                head = ", ".join(f"{v:.4f}" for v in list(_flat(values))[:4])
                typer.echo(f"{r.video}: {name} [{len(list(_flat(values)))} values] {head} ...")
            for entry in r.labels:
                typer.echo(f"{r.video}: {entry['label']} ({entry['index']}) {entry['score']:.4f}")
    if any(r.error for r in results):
        raise typer.Exit(1)


def _flat(values):
    for v in values:
        if isinstance(v, list):
            yield from _flat(v)
        else:
            yield v


def register(app: typer.Typer) -> None:
    app.command("triton-repo")(triton_repo)
    app.command("serve")(serve)
    app.command("infer")(infer)
