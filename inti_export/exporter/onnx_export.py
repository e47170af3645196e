"""Model to ONNX: `export_onnx` and the checks that follow it."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import inti_export
from inti_export.errors import ExportError, one_line
from inti_export.exporter import functions, passes
from inti_export.fileio import atomic_output, check_output_path, sha256_file, write_json
from inti_export.metrics import cosine_per_sample
from inti_export.models import compute_mode
from inti_export.models.video_vit import InTIVideoModel
from inti_export.plugins import torch_op as _inti_op  # noqa: F401  registers torch.ops.inti.token_interpolate
from inti_export.vocab import (
    INPUT_NAME,
    META_BOUNDARIES,
    META_CONFIG,
    META_FRAMES,
    META_IMAGE_SIZE,
    META_INPUTS,
    META_INSERT_BEFORE,
    META_INTI_OP,
    META_MEAN,
    META_OPSET,
    META_OUTPUTS,
    META_PRECISION,
    META_PRESET,
    META_STD,
    META_VERSION,
    InTIOp,
    Precision,
    package_versions,
    values,
)

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 20  # torch.onnx's dynamo default; the InTI function uses opset-18 ops only


@dataclass
class ExportSpec:
    """How to export: opset, batch axis, and how InTI appears in the graph."""

    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    inti_op: str = InTIOp.function.value  # a vocab.InTIOp value
    example_batch: int = 2  # >= 2 so the batch axis is not specialised to a constant
    max_batch: int = 1024


@dataclass
class Verification:
    """ONNX Runtime (CPU) against PyTorch on one batch of clips."""

    clips: list[str]
    max_abs_err: float
    scale: float  # max |output| of PyTorch
    rel_err: float  # max_abs_err / scale
    cosine: float
    passed: bool


@dataclass
class ExportResult:
    onnx_path: Path
    manifest_path: Path
    manifest: dict[str, Any]
    verification: Verification | None = None
    boundaries: list[dict[str, str]] = field(default_factory=list)


REL_TOL = 1e-4
COSINE_MIN = 0.99999


def sha256_state_dict(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_metadata(model: InTIVideoModel, spec: ExportSpec) -> dict[str, Any]:
    """The `inti.*` metadata an export writes for `model` (docs/reports.md), before JSON encoding."""
    cfg = model.cfg
    layout = "B,T,C,H,W"
    batch = "batch" if spec.dynamic_batch else spec.example_batch
    out_dim = cfg.num_classes or cfg.embed_dim
    return {
        META_VERSION: inti_export.__version__,
        META_PRESET: cfg.name,
        META_FRAMES: cfg.frames,
        META_IMAGE_SIZE: cfg.image_size,
        META_MEAN: list(cfg.mean),
        META_STD: list(cfg.std),
        META_INSERT_BEFORE: list(cfg.insert_before),
        META_INPUTS: [
            {"name": INPUT_NAME, "shape": [batch, cfg.frames, 3, cfg.image_size, cfg.image_size],
             "layout": layout, "dtype": "float32", "normalisation": "CLIP mean/std, RGB, [0,1] before"}
        ],
        META_OUTPUTS: [{"name": model.output_name, "shape": [batch, out_dim], "layout": "B,E"}],
        META_OPSET: spec.opset,
        META_INTI_OP: spec.inti_op,
        META_PRECISION: Precision.fp32.value,
        META_CONFIG: cfg.to_dict(),
    }


def example_video(model: InTIVideoModel, batch: int, seed: int = 0) -> torch.Tensor:
    c = model.cfg
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, c.frames, 3, c.image_size, c.image_size, generator=g)


def _torch_export(model: InTIVideoModel, spec: ExportSpec):
    """torch.onnx dynamo export -> onnx_ir.Model (attention as plain ops, InTI as one node or decomposed)."""
    video = example_video(model, spec.example_batch)
    return torch_export_module(model, video, INPUT_NAME, model.output_name, "batch", spec)


def torch_export_module(
    module: torch.nn.Module, example: torch.Tensor, input_name: str, output_name: str, dim_name: str, spec: ExportSpec
):
    """One-input `module` -> onnx_ir.Model; axis 0 named `dim_name` and dynamic when `spec.dynamic_batch`."""
    dynamic = {input_name: {0: torch.export.Dim(dim_name, min=1, max=spec.max_batch)}} if spec.dynamic_batch else None
    functions.register_schema()
    mode = compute_mode.scoped(fused_attention=False, blend_op=spec.inti_op == InTIOp.function)
    with mode, torch.no_grad(), contextlib.redirect_stdout(open(os.devnull, "w")):
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=spec.opset,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=dynamic,
            custom_translation_table={torch.ops.inti.token_interpolate.default: functions.translate_token_interpolate},
            optimize=True,
            verbose=False,
        )
    return program.model


def verify_onnx(
    onnx_path: str | Path,
    model: InTIVideoModel,
    clips: np.ndarray | None = None,
    clip_names: list[str] | None = None,
) -> Verification:
    """Full onnx.checker check, then ONNX Runtime CPU against PyTorch on `clips` (B, T, 3, H, W)."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(onnx_path), full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"onnx.checker rejected {onnx_path}: {one_line(e)}") from e
    if clips is None:
        clips = example_video(model, 2, seed=1).numpy()
        clip_names = ["random#0", "random#1"]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        got = sess.run(None, {INPUT_NAME: clips.astype(np.float32)})[0]
    except Exception as e:  # onnxruntime raises its own exception types
        raise ExportError(
            f"ONNX Runtime could not run {onnx_path} on clips of shape {tuple(clips.shape)}: {one_line(e)}"
        ) from e
    return verification_against(model, got, clips, clip_names)


def verification_against(model: InTIVideoModel, got: np.ndarray, clips: np.ndarray, clip_names) -> Verification:
    """`got` (an exported graph's output on `clips`) against the PyTorch model on the same clips."""
    with torch.no_grad():
        want = model(torch.from_numpy(np.ascontiguousarray(clips, dtype=np.float32))).numpy()
    err = float(np.abs(got - want).max())
    scale = float(np.abs(want).max()) or 1.0
    cos = float(cosine_per_sample(got, want).min())
    passed = err / scale < REL_TOL and cos > COSINE_MIN
    return Verification(list(clip_names or []), err, scale, err / scale, cos, passed)


def export_onnx(
    model: InTIVideoModel,
    output: str | Path,
    spec: ExportSpec | None = None,
    *,
    verify: bool = True,
    clips: np.ndarray | None = None,
    clip_names: list[str] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export `model` to `output` (+ `output.json` manifest); verify against PyTorch unless told not to.

    The file is written under a temporary name and renamed only once every check passed.
    `on_step(description)` is called as each long step starts (for a progress display).
    """
    step = on_step or (lambda text: logger.info("%s", text))
    spec = spec or ExportSpec()
    output = Path(output)
    if spec.inti_op not in values(InTIOp):
        raise ExportError(f"inti_op={spec.inti_op!r}: use 'function' or 'decomposed'")
    if spec.opset < 18:
        raise ExportError(f"opset={spec.opset}: the exporter needs opset 18 or newer")
    if spec.example_batch < 2 and spec.dynamic_batch:
        raise ExportError(f"example_batch={spec.example_batch}: use >= 2 so the batch axis stays dynamic")
    check_output_path(output, "output", error=ExportError)
    model = model.eval()
    manifest_path = output.with_name(output.name + ".json")
    with atomic_output(output) as tmp:
        step(f"exporting {model.cfg.name} with torch.onnx (dynamo, opset {spec.opset})")
        try:
            ir_model = _torch_export(model, spec)
        except Exception as e:
            raise ExportError(f"torch.onnx.export failed for {model.cfg.name}: {one_line(e)}") from e
        step("graph passes: InTI function, boundary names, metadata")
        passes.attach_inti_function(ir_model)
        boundaries = passes.name_boundaries(ir_model)
        passes.strip_node_metadata(ir_model)
        metadata = export_metadata(model, spec)
        metadata[META_BOUNDARIES] = boundaries
        passes.set_metadata(ir_model, metadata)
        ir_model.producer_name, ir_model.producer_version = "inti-export", inti_export.__version__
        ir_model.graph.name = model.cfg.name
        n_inti = len(passes.inti_nodes(ir_model))
        if spec.inti_op == InTIOp.function and n_inti != len(model.cfg.insert_before):
            raise ExportError(f"expected {len(model.cfg.insert_before)} TokenInterpolate nodes, found {n_inti}")
        import onnx_ir

        step(f"writing {output.name}")
        onnx_ir.save(ir_model, tmp)
        verification = None
        if verify:
            step("checking with onnx.checker and ONNX Runtime against PyTorch")
            verification = verify_onnx(tmp, model, clips, clip_names)
            if not verification.passed:
                raise ExportError(
                    f"ONNX Runtime output differs from PyTorch: rel err {verification.rel_err:.2e} "
                    f"(limit {REL_TOL:.0e}), cosine {verification.cosine:.7f} (limit {COSINE_MIN})"
                )
        manifest = {
            "onnx": output.name,
            "onnx_sha256": sha256_file(tmp),
            "weights_sha256": sha256_state_dict(model),
            "preset": model.cfg.name,
            "config": model.cfg.to_dict(),
            "export": asdict(spec),
            "inti_nodes": n_inti,
            "boundaries": boundaries,
            "versions": package_versions(),
            "verification": asdict(verification) if verification else None,
        }
        write_json(manifest_path, manifest, sort_keys=True)
    return ExportResult(output, manifest_path, manifest, verification, boundaries)


def export_preset(
    output: str | Path,
    *,
    preset: str,
    checkpoint: str | Path | None = None,
    clip_checkpoint: str | Path | None = None,
    num_classes: int = 0,
    spec: ExportSpec | None = None,
    verify: bool = True,
    clips: np.ndarray | None = None,
    clip_names: list[str] | None = None,
    on_step: Callable[[str], None] | None = None,
    stream: bool = False,
):
    """Build `preset` with its weights (`create_model`) and export it to `output` (`export_onnx`), or
    with `stream=True` its stem/head pair into folder `output` (`stream_export.export_stream`).

    `clips` (K, T, 3, H, W) are the verification inputs; without them, seeded random clips.
    Returns the ExportResult (or StreamExportResult) of the export.
    """
    from inti_export.models import create_model

    overrides = {"num_classes": num_classes} if num_classes else {}
    if on_step:
        on_step(f"building {preset}")
    model = create_model(preset, checkpoint=checkpoint, clip_checkpoint=clip_checkpoint, **overrides)
    if stream:
        from inti_export.exporter.stream_export import export_stream  # it imports this module

        return export_stream(model, output, spec, verify=verify, clips=clips, clip_names=clip_names, on_step=on_step)
    return export_onnx(model, output, spec, verify=verify, clips=clips, clip_names=clip_names, on_step=on_step)
