"""`inti-export bench`: latency percentiles and throughput per runner and batch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console, parse_ints
from inti_export.vocab import Device, TorchPrecision


def print_bench(report, out) -> None:
    from rich.table import Table

    table = Table(title=f"latency ({report.threads} threads; {report.machine.get('cpu', report.machine.get('processor'))})")
    for col in ("preset", "runner", "batch", "p50 ms", "p90 ms", "p99 ms", "clips/s", "GFLOPs/clip"):
        table.add_column(col, justify="left" if col in ("preset", "runner") else "right")
    for r in report.rows:
        table.add_row(r.preset, r.runner, str(r.batch), f"{r.p50_ms:.1f}", f"{r.p90_ms:.1f}", f"{r.p99_ms:.1f}",
                      f"{r.throughput_clips_s:.2f}", f"{r.gflops_per_clip:.1f}")
    out.print(table)
    for s in report.speedups:
        out.print(
            f"{s.runner} batch {s.batch}: InTI/naive latency {s.latency_ratio:.3f}, FLOP ratio {s.flop_ratio:.3f} "
            f"(difference {s.difference:+.3f}), speed-up {s.speedup:.2f}x"
        )
    groups: dict[tuple[str, str, str], tuple[dict, dict]] = {}  # (runner, status, reason) -> (batches, presets)
    for m in report.not_measured:
        batches, presets = groups.setdefault((m.runner, m.status, m.reason), ({}, {}))
        batches[str(m.batch)] = presets[m.preset] = None
    for (runner, status, reason), (batches, presets) in groups.items():
        out.print(f"[yellow]{status}[/yellow] {runner} batch {','.join(batches)} ({', '.join(presets)}): {reason}")


def print_stream_bench(report, out) -> None:
    from rich.table import Table

    g = report.gflops
    table = Table(title=f"stream: {report.preset}, T = {report.frames}, cached stem + head vs the whole window "
                  f"({report.threads} threads; GFLOPs stem {g['stem']:.3g}/frame, head {g['head']:.3g}, full {g['full']:.3g})")
    for col in ("runner", "S", "cached ms", "full ms", "ratio", "FLOPs predict", "stem ms/frame", "head ms", "windows"):
        table.add_column(col, justify="left" if col == "runner" else "right")
    for run in report.runs:
        for r in run.strides:
            table.add_row(run.runner, str(r.stride), f"{r.cached_ms:.2f}", f"{r.full_ms:.2f}", f"{r.ratio:.3f}",
                          f"{r.predicted:.3f}", f"{r.stem_ms_per_frame:.2f}", f"{r.head_ms:.2f}", str(r.windows_timed))
    out.print(table)
    for run in report.runs:
        lat = run.latency_at_stride_T
        out.print(f"{run.runner}: latency after a window's last frame: stem + head {lat.stem_plus_head_ms:.2f} ms, "
                  f"full {lat.full_ms:.2f} ms, ratio {lat.ratio:.3f} (FLOPs predict {lat.predicted:.3f})")
    for runner, why in report.not_measured.items():
        out.print(f"[yellow]skipped[/yellow] {runner}: {why}")


def bench(
    preset: Annotated[str, typer.Option("--preset", "-p", help="Model preset.")] = "inti-b16",
    onnx: Annotated[Path | None, typer.Option("--onnx", help="ONNX for the ort runners (default: export one); a "
                                              "stream pair folder (`onnx --stream`) implies --stream.")] = None,
    engine: Annotated[Path | None, typer.Option("--engine", help="TensorRT engine for the trt runner.")] = None,
    runners: Annotated[str, typer.Option(
        help="Comma-separated: torch, torch-compile, torch-kernel, ort, ort-cuda, ov, trt.")] = "torch,ort",
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1",
    iters: Annotated[int, typer.Option(help="Timed runs per measurement.", min=1)] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed runs first.", min=0)] = 2,
    threads: Annotated[int | None, typer.Option(help="CPU threads for PyTorch and ONNX Runtime.", min=1)] = None,
    device: Annotated[Device, typer.Option(help="PyTorch device.")] = Device.cpu,
    precision: Annotated[TorchPrecision, typer.Option(help="PyTorch precision.")] = TorchPrecision.fp32,
    compare_naive: Annotated[
        bool, typer.Option("--compare-naive", help="Also run the naive preset; report the speed-up.")
    ] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Per-window compute of a stream: cached stem + head against "
                                         "the whole window, per --stride, with the FLOP prediction (docs/stream.md).")] = False,
    stride: Annotated[str, typer.Option(help="With --stream: comma-separated strides S, each 1..T.")] = "1,2,4,8",
    full_onnx: Annotated[Path | None, typer.Option("--full-onnx", help="With --stream and a pair folder: the whole "
                                                   "model's ONNX (default: exported from the pair's config).")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here.")] = None,
) -> None:
    """Benchmark latency (p50/p90/p99) and throughput per runner and batch size."""
    out = console()
    if stream or (onnx is not None and onnx.is_dir()):
        return _bench_stream(preset, onnx, full_onnx, runners, stride, batch, iters, warmup, threads, engine,
                             compare_naive, report, plot, out)
    with cli_errors():
        from inti_export.fileio import check_output_path, write_json
        from inti_export.jobs.bench import check_bench_options, plot_bench, run_bench
        from inti_export.jobs.inputs import onnx_metadata
        from inti_export.models.config import get_config

        kinds = tuple(r.strip() for r in runners.split(",") if r.strip())
        batches = parse_ints(batch, "--batch")
        get_config(preset)
        check_bench_options(kinds, batches, iters, warmup, engine, device.value, precision.value)
        if onnx is not None:
            onnx_metadata(onnx, what="--onnx")
        for path, what in ((report, "--report"), (plot, "--plot")):
            if path is not None:
                check_output_path(path, what, inputs=[onnx, engine])
        with out.status(f"benchmarking {preset} ..."):
            result = run_bench(
                preset, runners=kinds, batches=batches, iters=iters, warmup=warmup, onnx_path=onnx, engine_path=engine,
                compare_naive=compare_naive, device=device.value, threads=threads, precision=precision.value,
            )
        if report is not None:
            write_json(report, result.to_dict())
        if plot is not None:
            plot_bench(result, plot)
    print_bench(result, out)
    if not result.rows:  # no runner could run: nothing was measured, which is not a success
        with cli_errors():
            from inti_export.errors import IntiExportError

            why = result.why_not_measured()
            raise IntiExportError("nothing measured: " + "; ".join(f"{k}: {v}" for k, v in why.items()))


def _bench_stream(preset, onnx, full_onnx, runners, stride, batch, iters, warmup, threads, engine, compare_naive,
                  report, plot, out) -> None:
    with cli_errors():
        from inti_export.errors import IntiExportError
        from inti_export.fileio import check_output_path, write_json
        from inti_export.jobs.stream_bench import plot_stream_bench, run_stream_bench

        if engine is not None or compare_naive or batch != "1":
            raise IntiExportError("--stream times one window at a time on torch and ort: drop --engine, "
                                  "--compare-naive and --batch")
        if onnx is not None and not onnx.is_dir():
            raise IntiExportError(f"--onnx {onnx} with --stream: give the folder `inti-export onnx --stream` wrote")
        for path, what in ((report, "--report"), (plot, "--plot")):
            if path is not None:
                check_output_path(path, what, inputs=[onnx, full_onnx], folders=[onnx])
        kinds = tuple(r.strip() for r in runners.split(",") if r.strip())
        with out.status("benchmarking the stream ..."):
            result = run_stream_bench(
                preset=None if onnx is not None else preset, pair_dir=onnx, full_onnx=full_onnx, runners=kinds,
                strides=parse_ints(stride, "--stride"), windows=iters, warmup=warmup, threads=threads,
            )
        if report is not None:
            write_json(report, result.to_dict())
        if plot is not None:
            plot_stream_bench(result, plot)
    print_stream_bench(result, out)
    if not result.runs:
        with cli_errors():
            from inti_export.errors import IntiExportError

            raise IntiExportError("nothing measured: " + "; ".join(f"{k}: {v}" for k, v in result.not_measured.items()))


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
