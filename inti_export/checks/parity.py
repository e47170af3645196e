"""The parity gate: the same clips through PyTorch, ONNX Runtime and TensorRT, compared per output.

`run_parity` returns a `ParityReport` (JSON-serialisable, schema in docs/reports.md). Given class
labels for the clips, each runner's top-1/top-5 against them is reported too, and a runner that
loses more than `max_top1_drop` points of top-1 against PyTorch fails the gate. When a
comparison against ONNX Runtime fails, `localize_divergence` runs a debug copy of the ONNX with
every block's and InTI layer's output exposed and names the first one that diverges.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.checks.accuracy import LabelAccuracy, RunnerStatus, drop_failure, label_accuracy, runner_status
from inti_export.checks.compare import Comparison, Tolerance, compare_arrays, cosine_per_sample, get_tolerance
from inti_export.errors import IntiExportError, ParityError, one_line
from inti_export.runtime.base import Runner
from inti_export.vocab import (
    INPUT_NAME,
    META_BOUNDARIES,
    META_FRAMES,
    META_IMAGE_SIZE,
    META_INSERT_BEFORE,
    META_OUTPUTS,
    RunnerKind,
    decode_metadata,
    package_versions,
    read_metadata,
)

logger = logging.getLogger(__name__)

PARITY_SCHEMA = "inti-export/parity/1"


@dataclass
class BoundaryCheck:
    """One intermediate output (a block's or an InTI layer's) of ONNX Runtime against PyTorch."""

    name: str  # "block.<i>" or "inti.<i>"
    description: str
    value: str  # ONNX value name
    rel_to_scale: float
    cosine_min: float
    passed: bool


@dataclass
class Divergence:
    runner: str
    first: str | None  # description of the first diverging boundary, None if all intermediates agree
    checks: list[BoundaryCheck]


@dataclass
class ParityReport:
    preset: str
    onnx: str | None
    engine: str | None
    tolerance: dict[str, Any]
    clips: list[str]
    runners: list[str]
    skipped: dict[str, str]  # runner -> reason
    comparisons: list[Comparison]
    divergence: Divergence | None = None
    passed: bool = False
    schema: str = PARITY_SCHEMA
    versions: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # runner -> how it evaluated (e.g. Q/DQ as quantised)
    labels: str | None = None  # the labels file, when accuracy against labels was measured
    max_top1_drop: float | None = None  # top-1 points a runner may lose against the reference (with labels)
    label_accuracy: list[LabelAccuracy] = field(default_factory=list)  # the reference first
    label_failures: list[str] = field(default_factory=list)  # one line per runner over `max_top1_drop`
    runner_status: list[RunnerStatus] = field(default_factory=list)  # every runner asked for: ok, failed, not run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParityReport:
        if d.get("schema") != PARITY_SCHEMA:
            raise ParityError(f"not a parity report of schema {PARITY_SCHEMA}: schema={d.get('schema')!r}")
        d = dict(d)
        d["comparisons"] = [Comparison(**c) for c in d["comparisons"]]
        if d.get("divergence"):
            div = dict(d["divergence"])
            div["checks"] = [BoundaryCheck(**c) for c in div["checks"]]
            d["divergence"] = Divergence(**div)
        d["label_accuracy"] = [LabelAccuracy(**a) for a in d.get("label_accuracy", [])]
        d["runner_status"] = [RunnerStatus(**r) for r in d.get("runner_status", [])]
        return cls(**d)


def describe_boundary(name: str) -> str:
    kind, idx = name.split(".")
    return f"InTI layer before block {idx}" if kind == "inti" else f"block {idx} (0-based resblocks[{idx}])"


def run_all(runners: list[Runner], feed: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for r in runners:
        with r:
            out[r.name] = r.infer(feed)
    return out


def torch_boundaries(model, video: np.ndarray) -> dict[str, np.ndarray]:
    """PyTorch outputs of every block and InTI layer, keyed like the ONNX boundaries ("block.3")."""
    import torch

    captured: dict[str, np.ndarray] = {}
    hooks = []

    def grab(key):
        return lambda m, i, o: captured.__setitem__(key, o.detach().float().cpu().numpy())

    for idx, layer in model.inti.items():
        hooks.append(layer.register_forward_hook(grab(f"inti.{idx}")))
    for i, block in enumerate(model.visual.transformer.resblocks):
        hooks.append(block.register_forward_hook(grab(f"block.{i}")))
    try:
        with torch.no_grad():
            model(torch.from_numpy(video))
    finally:
        for h in hooks:
            h.remove()
    return captured


def localize_divergence(
    model, onnx_path: str | Path, video: np.ndarray, tol: Tolerance, runner_name: str = "ort-cpu"
) -> Divergence:
    """Run a debug copy of the ONNX with intermediate outputs and find the first boundary that diverges."""
    import onnx_ir as ir

    from inti_export.exporter import passes
    from inti_export.runtime.ort_runner import OrtRunner

    boundaries = read_metadata(onnx_path).get(META_BOUNDARIES)
    if not boundaries:
        raise ParityError(f"{onnx_path} has no {META_BOUNDARIES} metadata: export it with inti-export to localise errors")
    ir_model = ir.load(str(onnx_path))
    passes.add_debug_outputs(ir_model, [b["value"] for b in boundaries])
    with tempfile.TemporaryDirectory(prefix="inti-debug-") as tmp:
        debug_path = Path(tmp) / "debug.onnx"
        ir.save(ir_model, debug_path)
        with OrtRunner(debug_path, name=f"{runner_name}-debug") as r:
            got = r.infer({INPUT_NAME: video})
    want = torch_boundaries(model, video)
    checks, first = [], None
    for b in boundaries:
        name, value = b["name"], b["value"]
        g, w = got[value], want[name]
        g = g.reshape(w.shape)  # the InTI node yields (B, T/2, N, D); the layer returns (B*T/2, N, D)
        scale = float(np.abs(w).max()) or 1.0
        rel = float(np.abs(g - w).max()) / scale
        cos = float(cosine_per_sample(g, w).min())
        ok = rel <= tol.rel_err and cos >= tol.cosine
        checks.append(BoundaryCheck(name, describe_boundary(name), value, rel, cos, ok))
        if not ok and first is None:
            first = describe_boundary(name)
    return Divergence(runner=runner_name, first=first, checks=checks)


def run_parity(
    model,
    clips: np.ndarray,
    clip_names: list[str],
    *,
    onnx_path: str | Path | None = None,
    engine_path: str | Path | None = None,
    tolerance: str = "fp32",
    onnx_runners: tuple[str, ...] = ("ort",),
    localize: bool = True,
    allow_skip: bool = False,
    labels: np.ndarray | None = None,
    labels_path: str | Path | None = None,
    max_top1_drop: float = 1.0,
) -> ParityReport:
    """PyTorch (reference) vs ONNX Runtime vs TensorRT on `clips` (K, T, 3, H, W).

    `onnx_runners`: which runners run the ONNX: `ort` (CPU), `ort-cuda`, `ov` (OpenVINO CPU).

    A runner that was asked for but cannot run here (no GPU, no TensorRT) fails the gate unless
    `allow_skip`: an unchecked engine is not a checked one. `labels` (K,) class indices add each
    runner's top-1/top-5 against them; a runner more than `max_top1_drop` points of top-1 below the
    reference fails the gate.
    """
    from inti_export.runtime.ort_runner import OrtRunner
    from inti_export.runtime.torch_runner import TorchRunner

    tol = get_tolerance(tolerance)
    if onnx_path is None and engine_path is None:
        raise ParityError("nothing to compare: give an ONNX file (--onnx) and/or an engine (--engine)")
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if model.head is None:
            raise ParityError(f"preset {model.cfg.name} has no classifier head (num_classes=0): accuracy against"
                              " labels needs a preset with num_classes")
        if labels.shape != (len(clips),):
            raise ParityError(f"{labels.size} labels for {len(clips)} clips; they must pair up")
        if not max_top1_drop >= 0:
            raise ParityError(f"max_top1_drop={max_top1_drop} must be >= 0 (points of top-1)")
    pair = onnx_path is not None and Path(onnx_path).is_dir()  # a stream pair folder (docs/stream.md)
    if onnx_path is not None:
        (_check_pair_matches if pair else _check_onnx_matches)(model, onnx_path)
    if engine_path is not None:
        _check_engine_matches(model, engine_path, onnx_path)
    feed = {INPUT_NAME: np.ascontiguousarray(clips, dtype=np.float32)}
    reference = TorchRunner(model)
    runners: list[Runner] = [reference]
    skipped: dict[str, str] = {}
    if pair:
        runners.append(_pair_runner(onnx_path))
    elif onnx_path is not None:
        for kind in onnx_runners:
            if kind == RunnerKind.ov.value:
                from inti_export.runtime.ov_runner import OvRunner

                runners.append(OvRunner(onnx_path))
            elif kind in (RunnerKind.ort.value, RunnerKind.ort_cuda.value):
                runners.append(OrtRunner(onnx_path, device="cuda" if kind == RunnerKind.ort_cuda.value else "cpu"))
            else:
                raise ParityError(f"runner {kind!r} does not run an ONNX: use ort, ort-cuda or ov")
    if engine_path is not None:
        try:
            from inti_export.runtime.trt import TrtRunner

            runners.append(TrtRunner(engine_path))
        except IntiExportError as e:
            skipped["trt"] = str(e)
    results: dict[str, dict[str, np.ndarray]] = {}
    notes = {r.name: r.mode_label for r in runners if isinstance(r, OrtRunner)}
    for r in runners:
        try:
            with r:
                results[r.name] = r.infer(feed)
        except (IntiExportError, ImportError) as e:
            if r is reference:
                raise
            skipped[r.name] = one_line(e)
            logger.warning("skipping runner %s: %s", r.name, skipped[r.name])
    out_name = model.output_name
    for name, res in results.items():
        if out_name not in res:
            raise ParityError(f"{name} returned outputs {sorted(res)}, not {out_name!r}: the artifact is not this model")
    ref = results[reference.name][out_name]
    comparisons = [
        compare_arrays(
            res[out_name], ref, tol, output=out_name, runner=name, reference=reference.name, logits=model.head is not None
        )
        for name, res in results.items()
        if name != reference.name
    ]
    failures: dict[str, list[str]] = {}  # runner -> why it fails, for its status
    for c in comparisons:
        failures.setdefault(c.runner, []).extend(f"{c.output}: {f}" for f in c.failures)
    accuracy, label_failures = [], []
    if labels is not None:
        accuracy = label_accuracy({name: res[out_name] for name, res in results.items()}, labels)
        for a in accuracy[1:]:
            line = drop_failure(a, accuracy[0], max_top1_drop)
            if line:
                label_failures.append(line)
                failures.setdefault(a.runner, []).append(line)
    divergence = None
    failed_ort = [c for c in comparisons if not c.passed and c.runner.startswith("ort")]
    if failed_ort and localize and onnx_path is not None and not pair:
        divergence = localize_divergence(model, onnx_path, feed[INPUT_NAME], tol, failed_ort[0].runner)
    report = ParityReport(
        preset=model.cfg.name,
        onnx=str(onnx_path) if onnx_path else None,
        engine=str(engine_path) if engine_path else None,
        tolerance=asdict(tol),
        clips=list(clip_names),
        runners=list(results),
        skipped=skipped,
        comparisons=comparisons,
        divergence=divergence,
        passed=(bool(comparisons) and all(c.passed for c in comparisons) and (allow_skip or not skipped)
                and not label_failures),
        versions=package_versions(),
        notes=notes,
        labels=None if labels is None else str(labels_path or "given"),
        max_top1_drop=None if labels is None else max_top1_drop,
        label_accuracy=accuracy,
        label_failures=label_failures,
        runner_status=runner_status(list(results), skipped, failures),
    )
    return report


def _check_onnx_matches(model, onnx_path) -> None:
    """One line if the ONNX cannot be read or was exported for another input/output or config."""
    import onnx

    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as e:
        raise ParityError(f"--onnx {onnx_path} is not a readable ONNX file ({one_line(e, 160)})") from e
    inputs = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    outputs = [o.name for o in proto.graph.output]
    if inputs != [INPUT_NAME] or model.output_name not in outputs:
        raise ParityError(
            f"--onnx {onnx_path} has inputs {inputs} and outputs {outputs}; {model.cfg.name} needs input"
            f" {INPUT_NAME!r} and output {model.output_name!r}: export it with `inti-export onnx`"
        )
    _check_config(model, decode_metadata({p.key: p.value for p in proto.metadata_props}), f"--onnx {onnx_path}")


def _pair_runner(directory) -> Runner:
    """ONNX Runtime CPU: stem.onnx on every frame, head.onnx on each clip's T stems, as one runner."""
    from inti_export.runtime.pair_runner import PairRunner
    from inti_export.runtime.stream import OrtStemHead

    return PairRunner(lambda: OrtStemHead(directory), "ort-stem+head")


def _check_pair_matches(model, directory) -> None:
    """One line if the folder is not a checked stem/head pair, or was exported for another output or config."""
    from inti_export.runtime.stream import load_stream_artifact

    artifact = load_stream_artifact(directory)
    outputs = [o["name"] for o in artifact.meta.get(META_OUTPUTS, [])]
    if outputs and model.output_name not in outputs:
        raise ParityError(f"--onnx {directory}: head.onnx outputs {outputs}; {model.cfg.name} has {model.output_name!r}:"
                          " pass the matching --preset")
    _check_config(model, artifact.meta, f"--onnx {directory}")


def _check_engine_matches(model, engine_path, onnx_path) -> None:
    """File, manifest, hashes and (with an ONNX) provenance, checked here: no GPU or TensorRT needed."""
    from inti_export.runtime.trt import verify_engine_artifact

    manifest = verify_engine_artifact(engine_path, onnx_path)
    ins = [t["name"] for t in manifest.inputs]
    outs = [t["name"] for t in manifest.outputs]
    if ins != [INPUT_NAME] or model.output_name not in outs:
        raise ParityError(
            f"--engine {engine_path} has inputs {ins} and outputs {outs}; {model.cfg.name} needs input"
            f" {INPUT_NAME!r} and output {model.output_name!r}"
        )
    _check_config(model, decode_metadata(manifest.onnx_metadata), f"--engine {engine_path}")


def _check_config(model, meta: dict[str, Any], source: str) -> None:
    cfg = model.cfg
    for key, want in ((META_FRAMES, cfg.frames), (META_IMAGE_SIZE, cfg.image_size),
                      (META_INSERT_BEFORE, list(cfg.insert_before))):
        if key in meta and meta[key] != want:
            raise ParityError(
                f"{source} was exported with {key.split('.', 1)[1]}={meta[key]}, the PyTorch model "
                f"{cfg.name} has {want}: pass the matching --preset"
            )
