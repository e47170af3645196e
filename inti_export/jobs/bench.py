"""Latency benchmarks: warm-up, then timed runs between device synchronisations, percentiles.

`run_bench` measures each (preset, runner, batch) and, with `compare_naive`, the matching naive
preset in the same process, interleaved, so the InTI speed-up is read beside the FLOP ratio.
The timing and the latency row are runtime/timing.py's (shared with `optimize`); the report is
described in docs/reports.md.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import IntiExportError, one_line
from inti_export.fileio import atomic_output
from inti_export.runtime.timing import LatencyRow, machine_info, time_runs
from inti_export.vocab import INPUT_NAME, Device, RunnerKind, Status, TorchPrecision, package_versions, values

logger = logging.getLogger(__name__)

BENCH_SCHEMA = "inti-export/bench/1"
RUNNER_KINDS = values(RunnerKind)


@dataclass
class BenchRow(LatencyRow):
    """One measured (preset, runner, batch): the latency row and what it was measured on."""

    preset: str
    runner: str  # the runner's name, e.g. torch-cpu
    gflops_per_clip: float
    status: str = Status.ok.value  # a measured row is ok (docs/reports.md, Status)
    reason: str = ""


@dataclass
class NotMeasured:
    """A (preset, runner, batch) that could not be measured, and why."""

    preset: str
    runner: str  # the runner kind asked for, e.g. trt
    batch: int
    status: str  # skipped (this machine lacks what it needs) or failed (it raised); vocab.Status
    reason: str


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
    not_measured: list[NotMeasured]
    speedups: list[Speedup]
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
        d["not_measured"] = [NotMeasured(**m) for m in d.get("not_measured", [])]
        d.pop("skipped", None)  # reports written before the one Status word: {runner: reason}
        return cls(**d)

    def why_not_measured(self) -> dict[str, str]:
        """runner -> the reason of its first `not_measured` entry, for one-line messages."""
        out: dict[str, str] = {}
        for m in self.not_measured:
            out.setdefault(m.runner, m.reason)
        return out


def _time_interleaved(kind, variants, batch, iters, warmup, device, threads, precision) -> list[tuple[str, np.ndarray]]:
    """Time every variant on runner `kind`, alternating between them each iteration, so that
    load from elsewhere on the machine falls on InTI and naive alike."""
    import contextlib

    from inti_export.runtime.factory import make_runner

    with contextlib.ExitStack() as stack:
        runs = []
        for _, vcfg, model, vonnx, vengine, _ in variants:
            runner = stack.enter_context(
                make_runner(kind, model, vonnx, vengine, device, threads, precision, ort_mode="as-executed")
            )
            shape = (batch, vcfg.frames, 3, vcfg.image_size, vcfg.image_size)
            runs.append((runner, {INPUT_NAME: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}))
        return [(runner.name, times) for (runner, _), times in zip(runs, time_runs(runs, iters, warmup), strict=True)]


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
    if device not in values(Device):
        raise IntiExportError(f"device {device!r}: choose {', '.join(values(Device))}")
    if precision not in values(TorchPrecision):
        raise IntiExportError(f"PyTorch precision {precision!r}: choose {', '.join(values(TorchPrecision))}")


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
    """Benchmark `preset` (and its naive counterpart) on each runner and batch size; a runner x batch
    that cannot run here is listed in `not_measured` with its status and reason."""
    import torch

    from inti_export.exporter import ExportSpec, export_onnx
    from inti_export.models import create_model
    from inti_export.models.config import get_config
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
    missed: list[NotMeasured] = []
    with tempfile.TemporaryDirectory(prefix="inti-bench-") as tmp:
        prepared = []
        for name, vcfg, model, vonnx, vengine in variants:
            if any(r.startswith("ort") or r == "ov" for r in runners) and vonnx is None:
                vonnx = Path(tmp) / f"{len(prepared)}.onnx"
                logger.info("exporting %s for ONNX Runtime / OpenVINO", name)
                export_onnx(model, vonnx, ExportSpec(), verify=False)
            prepared.append((name, vcfg, model, vonnx, vengine, count_flops(vcfg).gflops))
        for kind in runners:
            active = [v for v in prepared if kind != "trt" or v[4] is not None]
            no_engine = [v[0] for v in prepared if kind == "trt" and v[4] is None]  # the naive variant
            missed += [NotMeasured(name, kind, b, Status.skipped.value, f"trt times --engine, an engine of {preset}")
                       for b in batches for name in no_engine]
            for i, batch in enumerate(batches):
                try:
                    times = _time_interleaved(kind, active, batch, iters, warmup, device, threads, precision)
                except (IntiExportError, ImportError) as e:  # the rest of this runner's batches are not tried
                    missed += _not_measured(e, kind, [v[0] for v in active], batches[i:])
                    logger.warning("%s not measured: %s", kind, one_line(e))
                    break
                for (name, _, _, _, _, gflops), (runner_name, t) in zip(active, times, strict=True):
                    rows.append(BenchRow.from_times(t, batch, warmup, preset=name, runner=runner_name,
                                                    gflops_per_clip=gflops))
    speedups = _speedups(rows, preset, variants[1][0]) if compare_naive else []
    return BenchReport(rows, missed, speedups, machine_info(), package_versions(), threads)


def _not_measured(e: Exception, kind: str, presets: list[str], batches: tuple[int, ...]) -> list[NotMeasured]:
    """A runner that cannot run here (a missing module or GPU: ImportError) is skipped at every batch; one
    that raised is failed at `batches[0]`, and its larger batches are skipped as not tried."""
    reason = one_line(e)
    if isinstance(e, ImportError):
        return [NotMeasured(p, kind, b, Status.skipped.value, reason) for b in batches for p in presets]
    first, rest = batches[0], batches[1:]
    return [NotMeasured(p, kind, first, Status.failed.value, reason) for p in presets] + [
        NotMeasured(p, kind, b, Status.skipped.value, f"not tried after batch {first} failed") for b in rest for p in presets]


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
