"""Latency benchmarks: warm-up, then timed runs between device synchronisations, percentiles.

`run_bench` measures each (preset, runner, batch) and, with `compare_naive`, the matching naive
preset in the same process, interleaved, so the InTI speed-up is read beside the FLOP ratio.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inti_export.errors import IntiExportError, one_line
from inti_export.fileio import atomic_output
from inti_export.models import create_model
from inti_export.models.config import get_config
from inti_export.runtime.factory import make_runner
from inti_export.vocab import INPUT_NAME, RunnerKind, package_versions, values

logger = logging.getLogger(__name__)

BENCH_SCHEMA = "inti-export/bench/1"
RUNNER_KINDS = values(RunnerKind)
TORCH_PRECISIONS = ("fp32", "fp16", "bf16")  # what TorchRunner casts to
DEVICES = ("cpu", "cuda")


@dataclass
class BenchRow:
    preset: str
    runner: str
    batch: int
    iters: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput_clips_s: float  # batch / median latency
    gflops_per_clip: float


@dataclass
class Speedup:
    runner: str
    batch: int
    inti_preset: str
    naive_preset: str
    latency_ratio: float  # InTI p50 / naive p50
    flop_ratio: float  # InTI GFLOPs / naive GFLOPs
    difference: float  # latency_ratio - flop_ratio
    speedup: float  # naive p50 / InTI p50


@dataclass
class BenchReport:
    rows: list[BenchRow]
    speedups: list[Speedup]
    skipped: dict[str, str]
    machine: dict[str, Any]
    versions: dict[str, str]
    threads: int
    schema: str = BENCH_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchReport:
        if d.get("schema") != BENCH_SCHEMA:
            raise IntiExportError(f"not a bench report of schema {BENCH_SCHEMA}: schema={d.get('schema')!r}")
        d = dict(d)
        d["rows"] = [BenchRow(**r) for r in d["rows"]]
        d["speedups"] = [Speedup(**s) for s in d["speedups"]]
        return cls(**d)


def _time_interleaved(kind, variants, batch, iters, warmup, device, threads, precision) -> list[tuple[str, np.ndarray]]:
    """Time every variant on runner `kind`, alternating between them each iteration, so that
    load from elsewhere on the machine falls on InTI and naive alike."""
    import contextlib

    with contextlib.ExitStack() as stack:
        runs = []
        for _, vcfg, model, vonnx, vengine, _ in variants:
            runner = stack.enter_context(
                make_runner(kind, model, vonnx, vengine, device, threads, precision, ort_mode="as-executed")
            )
            shape = (batch, vcfg.frames, 3, vcfg.image_size, vcfg.image_size)
            runs.append((runner, {INPUT_NAME: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}))
        return [(runner.name, times) for (runner, _), times in zip(runs, time_runs(runs, iters, warmup), strict=True)]


def time_runs(runs, iters: int, warmup: int) -> list[np.ndarray]:
    """Seconds per call of each active (runner, feed): `warmup` untimed calls each, then `iters`
    rounds that call every one in turn, so load from elsewhere falls on all of them alike.

    Shared by `bench` (InTI against naive) and `optimize` (one candidate's batch sizes).
    """
    for runner, feed in runs:
        for _ in range(warmup):
            runner.infer(feed)
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(iters):
        for (runner, feed), t in zip(runs, times, strict=True):
            runner.infer(feed)
            t.append(runner.last_inference_time)
    return [np.asarray(t) for t in times]


def summarise(times_s: np.ndarray, preset: str, runner: str, batch: int, warmup: int, gflops: float) -> BenchRow:
    ms = times_s * 1e3
    p50 = float(np.percentile(ms, 50))
    return BenchRow(
        preset=preset, runner=runner, batch=batch, iters=len(ms), warmup=warmup,
        p50_ms=p50, p90_ms=float(np.percentile(ms, 90)), p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()), min_ms=float(ms.min()), throughput_clips_s=batch / (p50 / 1e3), gflops_per_clip=gflops,
    )


def machine_info() -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def check_bench_options(runners, batches, iters, warmup, engine_path, device, precision) -> None:
    """One line naming the bad value, before any model is built."""
    bad = [r for r in runners if r not in RUNNER_KINDS]
    if bad:
        raise IntiExportError(f"unknown runner(s) {bad}; use {', '.join(RUNNER_KINDS)}")
    if not runners:
        raise IntiExportError("no runner given: use one or more of " + ", ".join(RUNNER_KINDS))
    if iters < 1 or warmup < 0 or not batches or any(b < 1 for b in batches):
        raise IntiExportError(
            f"iters={iters}, warmup={warmup}, batches={list(batches)}: need iters >= 1, warmup >= 0, batch >= 1"
        )
    if "trt" in runners and engine_path is None:
        raise IntiExportError("runner 'trt' needs --engine ENGINE (build one with `inti-export trt`)")
    if engine_path is not None and not Path(engine_path).is_file():
        raise IntiExportError(f"--engine {engine_path} does not exist")
    if device not in DEVICES:
        raise IntiExportError(f"device {device!r}: choose {', '.join(DEVICES)}")
    if precision not in TORCH_PRECISIONS:
        raise IntiExportError(f"PyTorch precision {precision!r}: choose {', '.join(TORCH_PRECISIONS)}")


def run_bench(
    preset: str,
    *,
    runners: tuple[str, ...] = ("torch", "ort"),
    batches: tuple[int, ...] = (1,),
    iters: int = 10,
    warmup: int = 2,
    onnx_path: Path | None = None,
    engine_path: Path | None = None,
    compare_naive: bool = False,
    naive_onnx_path: Path | None = None,
    device: str = "cpu",
    threads: int | None = None,
    precision: str = "fp32",
    checkpoint: Path | None = None,
) -> BenchReport:
    """Benchmark `preset` (and its naive counterpart) on each runner and batch size."""
    from inti_export.exporter import ExportSpec, export_onnx
    from inti_export.models.flops import count_flops

    check_bench_options(runners, batches, iters, warmup, engine_path, device, precision)
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    cfg = get_config(preset)
    variants = [(preset, cfg, create_model(preset, checkpoint=checkpoint), onnx_path, engine_path)]
    if compare_naive:
        if not cfg.insert_before:
            raise IntiExportError(f"--compare-naive: {preset} has no InTI layer; pass an InTI preset")
        naive_cfg = dataclasses.replace(cfg, insert_before=(), name=f"naive({preset})")
        variants.append((naive_cfg.name, naive_cfg, create_model(naive_cfg), naive_onnx_path, None))
    rows: list[BenchRow] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="inti-bench-") as tmp:
        prepared = []
        for name, vcfg, model, vonnx, vengine in variants:
            if any(r.startswith("ort") or r == "ov" for r in runners) and vonnx is None:
                vonnx = Path(tmp) / f"{len(prepared)}.onnx"
                logger.info("exporting %s for ONNX Runtime / OpenVINO", name)
                export_onnx(model, vonnx, ExportSpec(), verify=False)
            prepared.append((name, vcfg, model, vonnx, vengine, count_flops(vcfg).gflops))
        for kind in runners:
            for batch in batches:
                active = [v for v in prepared if not (kind == "trt" and v[4] is None)]
                try:
                    times = _time_interleaved(kind, active, batch, iters, warmup, device, threads, precision)
                except (IntiExportError, ImportError) as e:
                    skipped[kind] = one_line(e)
                    logger.warning("skipping %s: %s", kind, skipped[kind])
                    break
                for (name, _, _, _, _, gflops), (runner_name, t) in zip(active, times, strict=True):
                    rows.append(summarise(t, name, runner_name, batch, warmup, gflops))
    speedups = _speedups(rows, preset, variants[1][0]) if compare_naive else []
    return BenchReport(rows, speedups, skipped, machine_info(), package_versions(), threads)


def _speedups(rows: list[BenchRow], inti: str, naive: str) -> list[Speedup]:
    by_key = {(r.preset, r.runner, r.batch): r for r in rows}
    out = []
    for r in rows:
        if r.preset != inti or (naive, r.runner, r.batch) not in by_key:
            continue
        n = by_key[(naive, r.runner, r.batch)]
        lat, flop = r.p50_ms / n.p50_ms, r.gflops_per_clip / n.gflops_per_clip
        out.append(Speedup(r.runner, r.batch, inti, naive, lat, flop, lat - flop, n.p50_ms / r.p50_ms))
    return out


def plot_bench(report: BenchReport, path: Path) -> None:
    """Median latency per runner and batch (bars, p90 as error bar), InTI beside naive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r.runner, r.batch) for r in report.rows}, key=lambda k: (k[0], k[1]))
    presets = list(dict.fromkeys(r.preset for r in report.rows))
    by_key = {(r.preset, r.runner, r.batch): r for r in report.rows}
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(groups) * len(presets)), 4))
    width = 0.8 / max(1, len(presets))
    for j, preset in enumerate(presets):
        xs, ys, errs = [], [], []
        for i, key in enumerate(groups):
            row = by_key.get((preset, *key))
            if row:
                xs.append(i + j * width)
                ys.append(row.p50_ms)
                errs.append(row.p90_ms - row.p50_ms)
        ax.bar(xs, ys, width, yerr=errs, label=preset, capsize=3)
    ax.set_xticks([i + width * (len(presets) - 1) / 2 for i in range(len(groups))])
    ax.set_xticklabels([f"{r}\nbatch {b}" for r, b in groups])
    ax.set_ylabel("latency p50 (ms), error bar to p90")
    title = "inti-export bench"
    if report.speedups:
        s = report.speedups[0]
        title += f": {s.inti_preset} / naive latency {s.latency_ratio:.3f} vs FLOPs {s.flop_ratio:.3f}"
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
