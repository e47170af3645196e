"""`inti-export trt` (ONNX -> TensorRT engine + manifest) and `inti-export inspect` (engine -> report)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console
from inti_export.errors import EngineError
from inti_export.jobs.engine import convert_and_build
from inti_export.runtime.trt import (
    TRT_LOG_NAME,
    BuildConfig,
    inspect_engine,
    parse_batch_profile,
)
from inti_export.vocab import META_PRESET, TrtRuntime, Verbosity


def trt(
    model: Annotated[Path, typer.Argument(help="ONNX model written by `inti-export onnx`, or a stream pair folder "
                                          "(`onnx --stream`): stem.engine and head.engine.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Engine path (default: MODEL with .engine); for "
                                                "a pair, a folder (default: the pair's, or PAIR.<precision>).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Build from an FP16-cast ONNX.")] = False,
    bf16: Annotated[bool, typer.Option("--bf16", help="Build from a BF16-cast ONNX.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Build from an INT8 Q/DQ ONNX (calibrated).")] = False,
    fp8: Annotated[bool, typer.Option("--fp8", help="Build from an FP8 Q/DQ ONNX (calibrated).")] = False,
    calib_data: Annotated[Path | None, typer.Option("--calib-data", help="Calibration clips for --int8/--fp8.")] = None,
    runtime: Annotated[
        TrtRuntime, typer.Option("--runtime", help="auto: full TensorRT if importable, else TensorRT-RTX.")] = TrtRuntime.auto,
    batch: Annotated[str | None, typer.Option("--batch", help="Batch profile MIN:OPT:MAX (default 1:8:8: kernels tuned for the "
                                              "served batch); a pair's head (its stem's frames: 1:1:T x MAX).")] = None,
    timing_cache: Annotated[
        Path | None, typer.Option("--timing-cache", help="Timing cache to load and update (full TensorRT).")] = None,
    plugin: Annotated[
        bool, typer.Option("--plugin/--no-plugin", help="Use the TokenInterpolate plugin (full TensorRT only).")] = False,
    workspace: Annotated[
        float | None, typer.Option("--workspace", help="Workspace limit in GiB (default: the runtime's).")] = None,
    compute_capability: Annotated[list[str] | None, typer.Option(
        "--compute-capability", help="TensorRT-RTX target, repeatable: SM86, 8.9, current.")] = None,
    opt_level: Annotated[int | None, typer.Option("--opt-level", help="Builder optimization level 0-5.", min=0, max=5)] = None,
    log_level: Annotated[Verbosity, typer.Option("--log-level", help="TensorRT messages to show on stderr.")] = Verbosity.warning,
    allow_foreign: Annotated[bool, typer.Option("--allow-foreign", help="Build an ONNX without inti-export metadata.")] = False,
) -> None:
    """Build a TensorRT engine (strongly typed, precision from the graph) and its manifest."""
    with cli_errors():
        chosen = [name for name, on in (("fp16", fp16), ("bf16", bf16), ("int8", int8), ("fp8", fp8)) if on]
        if len(chosen) > 1:
            raise EngineError(f"choose one precision, not {' and '.join('--' + c for c in chosen)}")
        from inti_export.fileio import check_output_path
        from inti_export.jobs.inputs import check_inputs_exist, onnx_metadata
        from inti_export.jobs.stream_engine import is_pair_dir

        pair = model.is_dir() and is_pair_dir(model)
        check_inputs_exist(calib_data=calib_data, timing_cache=None)
        if not pair:
            onnx_metadata(model, allow_foreign=allow_foreign, what="MODEL")
            engine = output or model.with_suffix(".engine")
            check_output_path(engine, "--output", inputs=[model, calib_data, timing_cache, model.with_name(model.name + ".json")])
        if timing_cache is not None:
            check_output_path(timing_cache, "--timing-cache", inputs=[model] if pair else [model, engine])
        level = logging.DEBUG if log_level == Verbosity.verbose else log_level.value.upper()
        logging.getLogger(TRT_LOG_NAME).setLevel(level)
        config = BuildConfig(
            runtime=runtime.value, batch=parse_batch_profile(batch) if batch is not None else None, workspace_gib=workspace,
            timing_cache=timing_cache, plugin=plugin, compute_capabilities=tuple(compute_capability or ()),
            optimization_level=opt_level, verbosity=log_level.value, allow_foreign=allow_foreign,
        )
        with _RichProgress() as progress:
            if pair:
                from inti_export.jobs.stream_engine import build_pair_engines

                built = build_pair_engines(model, output, config, chosen[0] if chosen else None, calib_data, progress)
            else:
                manifest = convert_and_build(
                    model, engine, config, chosen[0] if chosen else None, calib_data=calib_data, progress=progress
                )
    out = console()
    if pair:
        for m in (built.stem, built.head):
            out.print(f"[bold green]built[/] {built.directory / m.engine_file} ({m.engine_size / 2**20:.1f} MiB, "
                      f"{m.precision}, batch {':'.join(map(str, m.profile_batch))}) in {m.build_time_s:.1f} s")
        out.print(f"  {built.stem.runtime} {built.stem.runtime_version}; pair manifest {built.directory / 'stream.json'}")
        return
    summary = manifest.network_summary
    out.print(f"[bold green]built[/] {engine} ({manifest.engine_size / 2**20:.1f} MiB) in {manifest.build_time_s:.1f} s")
    out.print(f"  {manifest.runtime} {manifest.runtime_version}, {manifest.precision}, batch"
              f" {':'.join(map(str, manifest.profile_batch))}, targets {', '.join(manifest.compute_capabilities) or '-'}")
    out.print(
        f"  {summary.get('num_layers', 0)} network layers, InTI steps inlined:"
        f" {len(summary.get('functions', {}).get('TokenInterpolate', {}).get('calls', []))},"
        f" plugin layers: {len(summary.get('plugin_layers', []))}; manifest {engine}.json"
    )


def inspect(
    engine: Annotated[Path, typer.Argument(help="Engine built by `inti-export trt`, or a stream pair folder "
                                           "(ONNX and/or engines).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
) -> None:
    """Print an engine's manifest and layer information (engine layers need a GPU)."""
    if engine.is_dir():
        return _inspect_pair(engine, as_json)
    with cli_errors():
        info = inspect_engine(engine)
    if as_json:
        typer.echo(json.dumps(info, indent=1))
        return
    from rich.table import Table

    out = console()
    table = Table(title=str(engine), show_header=False)
    rows = [
        ("runtime", f"{info['runtime']} {info['runtime_version']}"),
        ("precision", info["precision"]),
        ("size", f"{info['engine_size'] / 2**20:.2f} MiB"),
        ("sha256", info["engine_sha256"]),
        ("profiles", "; ".join(f"{p['input']} {p['min']} .. {p['opt']} .. {p['max']}" for p in info["profiles"])),
        ("inputs", ", ".join(f"{t['name']} {t['dtype']} {t['shape']}" for t in info["inputs"])),
        ("outputs", ", ".join(f"{t['name']} {t['dtype']} {t['shape']}" for t in info["outputs"])),
        ("targets", f"{', '.join(info['compute_capabilities'])} ({info['compute_capabilities_source']})"),
        ("plugins", ", ".join(f"{p['namespace']}::{p['name']} v{p['version']}" for p in info["plugins"]) or "none"),
        ("onnx", f"{info['onnx_file']} sha256 {info['onnx_sha256'][:16]}..."),
        ("preset", info["onnx_metadata"].get(META_PRESET, "-")),
        ("build time", f"{info['build_time_s']:.2f} s"),
    ]
    summary = info.get("network_summary", {})
    if summary:
        rows.append(("network layers", f"{summary['num_layers']}: " + ", ".join(
            f"{k} {v}" for k, v in sorted(summary["layer_types"].items(), key=lambda kv: -kv[1]))))
        rows.append(("tensor dtypes", ", ".join(f"{k} {v}" for k, v in summary["output_dtypes"].items())))
        for name, fn in summary.get("functions", {}).items():
            rows.append((f"function {name}", f"inlined at {', '.join(fn['calls'])} ({fn['layers']} layers)"))
    engine_layers = info.get("engine_layers")
    if engine_layers is None:
        rows.append(("engine layers", info.get("engine_layers_note", "-")))
    else:
        count = len(engine_layers.get("Layers", [])) if isinstance(engine_layers, dict) else "?"
        rows.append(("engine layers", f"{count} (use --json to see them)"))
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)


def _inspect_pair(directory: Path, as_json: bool) -> None:
    with cli_errors():
        from inti_export.jobs.stream_engine import check_described, describe_pair, pair_lines

        info = describe_pair(directory)
    typer.echo(json.dumps(info, indent=1) if as_json else "\n".join(pair_lines(info)))
    with cli_errors():
        check_described(info)


class _RichProgress:
    """TensorRT build phases as transient rich progress bars on stderr (silent when not a terminal)."""

    def __enter__(self) -> _RichProgress | None:
        self._progress = None
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(file=sys.stderr), transient=True,
        )
        self._tasks: dict[str, int] = {}
        self._depth: dict[str, int] = {}
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        depth = self._depth[name] = self._depth.get(parent, -1) + 1 if parent else 0
        self._tasks[name] = self._progress.add_task("  " * depth + name, total=max(steps, 1))

    def step_complete(self, name: str, step: int) -> None:
        if name in self._tasks:
            self._progress.update(self._tasks[name], completed=step + 1)

    def phase_finish(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            self._progress.remove_task(task)


def register(app: typer.Typer) -> None:
    app.command("trt")(trt)
    app.command("inspect")(inspect)
