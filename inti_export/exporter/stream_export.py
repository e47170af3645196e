"""Model to a split ONNX pair for streams: stem.onnx (per frame) and head.onnx (per window), docs/stream.md.

The cut is at the first InTI layer (docs/model.md, "Streams"). stem.onnx: frames (F, 3, H, W) ->
stem (F, N, D), F dynamic; head.onnx: stems (B, T, N, D) -> embedding/logits, B dynamic, with the
`inti.TokenInterpolate` nodes and their function. head.onnx's metadata holds the sha256 of the stem
it was exported with (`runtime.stream.load_stream_artifact` refuses any other stem); each file's
manifest names its partner's sha256; stream.json describes the pair.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import inti_export
from inti_export.errors import ExportError, one_line
from inti_export.exporter import passes
from inti_export.exporter.onnx_export import (
    COSINE_MIN,
    REL_TOL,
    ExportSpec,
    Verification,
    example_video,
    export_metadata,
    sha256_state_dict,
    torch_export_module,
    verification_against,
)
from inti_export.fileio import atomic_output, sha256_file, write_json
from inti_export.models.video_vit import InTIVideoModel
from inti_export.vocab import (
    HEAD_FILE,
    HEAD_INPUT,
    META_CUT,
    META_INPUTS,
    META_OUTPUTS,
    META_PART,
    META_STEM_SHA,
    PAIR_MANIFEST,
    STEM_FILE,
    STEM_INPUT,
    STEM_OUTPUT,
    InTIOp,
    package_versions,
)

logger = logging.getLogger(__name__)


class _StemView(InTIVideoModel):
    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (F, 3, H, W) -> (F, N, D)
        return self.forward_stem(frames)


class _HeadView(InTIVideoModel):
    def forward(self, stems: torch.Tensor) -> torch.Tensor:  # (B, T, N, D) -> (B, out)
        return self.forward_head(stems)


def _view(model: InTIVideoModel, cls: type) -> InTIVideoModel:
    """The same module tree (same parameter names) with `forward` = one half."""
    view = copy.copy(model)
    view.__class__ = cls
    return view


@dataclass
class StreamExportResult:
    directory: Path
    stem_path: Path
    head_path: Path
    manifest: dict[str, Any]
    verification: Verification | None


def _metadata(model: InTIVideoModel, spec: ExportSpec, part: str, tokens: int) -> dict[str, Any]:
    c = model.cfg
    meta = export_metadata(model, spec)
    width, out_dim = c.width, c.num_classes or c.embed_dim
    if part == "stem":
        meta[META_INPUTS] = [{"name": STEM_INPUT, "shape": ["frames", 3, c.image_size, c.image_size], "layout": "F,C,H,W",
                                "dtype": "float32", "normalisation": "CLIP mean/std, RGB, [0,1] before"}]
        meta[META_OUTPUTS] = [{"name": STEM_OUTPUT, "shape": ["frames", tokens, width], "layout": "F,N,D"}]
    else:
        meta[META_INPUTS] = [{"name": HEAD_INPUT, "shape": ["batch", c.frames, tokens, width], "layout": "B,T,N,D",
                                "dtype": "float32", "normalisation": "stem.onnx outputs, T consecutive frames"}]
        meta[META_OUTPUTS] = [{"name": model.output_name, "shape": ["batch", out_dim], "layout": "B,E"}]
    meta[META_PART] = part
    meta[META_CUT] = model.stem_blocks
    return meta


def _export_half(model: InTIVideoModel, part: str, spec: ExportSpec, tokens: int):
    c = model.cfg
    if part == "stem":
        example = example_video(model, 1).reshape(-1, 3, c.image_size, c.image_size)[:3]  # (3, 3, H, W)
        view, names = _view(model, _StemView), (STEM_INPUT, STEM_OUTPUT, "frames")
    else:
        with torch.no_grad():
            example = model.forward_stem(example_video(model, 2).reshape(-1, 3, c.image_size, c.image_size))
        example = example.reshape(2, c.frames, *example.shape[1:])  # (2, T, N, D)
        view, names = _view(model, _HeadView), (HEAD_INPUT, model.output_name, "batch")
    try:
        ir_model = torch_export_module(view, example, *names, spec)
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed for the {part} of {c.name}: {one_line(e)}") from e
    passes.attach_inti_function(ir_model)
    passes.name_boundaries(ir_model)
    passes.strip_node_metadata(ir_model)
    ir_model.producer_name, ir_model.producer_version = "inti-export", inti_export.__version__
    ir_model.graph.name = f"{c.name}-{part}"
    return ir_model


def verify_pair(stem_path: Path, head_path: Path, model: InTIVideoModel, clips: np.ndarray | None = None,
                clip_names: list[str] | None = None) -> Verification:
    """ONNX Runtime CPU stem then head against the whole PyTorch model on `clips` (K, T, 3, H, W)."""
    import onnx
    import onnxruntime as ort

    for p in (stem_path, head_path):
        try:
            onnx.checker.check_model(str(p), full_check=True)
        except onnx.checker.ValidationError as e:
            raise ExportError(f"onnx.checker rejected {p}: {one_line(e)}") from e
    if clips is None:
        clips, clip_names = example_video(model, 2, seed=1).numpy(), ["random#0", "random#1"]
    k, t = clips.shape[:2]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        stem = ort.InferenceSession(str(stem_path), opts, providers=["CPUExecutionProvider"])
        head = ort.InferenceSession(str(head_path), opts, providers=["CPUExecutionProvider"])
        stems = stem.run(None, {STEM_INPUT: clips.reshape(k * t, *clips.shape[2:]).astype(np.float32)})[0]  # (K*T, N, D)
        got = head.run(None, {HEAD_INPUT: stems.reshape(k, t, *stems.shape[1:])})[0]  # (K, out)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ExportError(f"ONNX Runtime could not run the stem/head pair on clips {tuple(clips.shape)}: {one_line(e)}") from e
    return verification_against(model, got, clips, clip_names)


def export_stream(
    model: InTIVideoModel,
    directory: str | Path,
    spec: ExportSpec | None = None,
    *,
    verify: bool = True,
    clips: np.ndarray | None = None,
    clip_names: list[str] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> StreamExportResult:
    """Write `directory`/stem.onnx, head.onnx, their manifests and stream.json; verify unless told not to.

    Both files are written under temporary names and renamed only once both passed every check.
    """
    import onnx_ir

    step = on_step or (lambda text: logger.info("%s", text))
    spec = spec or ExportSpec()
    if not spec.dynamic_batch:
        raise ExportError("a stream export has dynamic frame and batch axes; drop --static-batch")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"--output {directory} is a file; a stream export writes a folder: give a folder path")
    if not directory.parent.is_dir():
        raise ExportError(f"--output folder {directory.parent} does not exist: create it first")
    if not model.cfg.insert_before:
        raise ExportError(f"preset {model.cfg.name} has no InTI layer: every block is per-frame, nothing to split")
    directory.mkdir(exist_ok=True)
    model = model.eval()
    c = model.cfg
    tokens = 1 + c.grid**2
    stem_path, head_path = directory / STEM_FILE, directory / HEAD_FILE
    with atomic_output(stem_path) as stem_tmp, atomic_output(head_path) as head_tmp:
        step(f"exporting the stem of {c.name} (patch embedding + blocks 1-{model.stem_blocks}, one frame at a time)")
        stem_ir = _export_half(model, "stem", spec, tokens)
        passes.set_metadata(stem_ir, _metadata(model, spec, "stem", tokens))
        onnx_ir.save(stem_ir, stem_tmp)
        stem_sha = sha256_file(stem_tmp)
        step(f"exporting the head of {c.name} (first InTI layer to {model.output_name}, one window at a time)")
        head_ir = _export_half(model, "head", spec, tokens)
        n_inti = len(passes.inti_nodes(head_ir))
        if spec.inti_op == InTIOp.function and n_inti != len(c.insert_before):
            raise ExportError(f"expected {len(c.insert_before)} TokenInterpolate nodes in the head, found {n_inti}")
        passes.set_metadata(head_ir, {**_metadata(model, spec, "head", tokens), META_STEM_SHA: stem_sha})
        onnx_ir.save(head_ir, head_tmp)
        head_sha = sha256_file(head_tmp)
        verification = None
        if verify:
            step("checking stem + head with ONNX Runtime against the whole PyTorch model")
            verification = verify_pair(stem_tmp, head_tmp, model, clips, clip_names)
            if not verification.passed:
                raise ExportError(
                    f"ONNX Runtime stem + head differs from PyTorch: rel err {verification.rel_err:.2e} "
                    f"(limit {REL_TOL:.0e}), cosine {verification.cosine:.7f} (limit {COSINE_MIN})"
                )
        common = {"preset": c.name, "config": c.to_dict(), "export": asdict(spec), "weights_sha256": sha256_state_dict(model),
                  "frames": c.frames, "mean": list(c.mean), "std": list(c.std), "cut_before_block": model.stem_blocks,
                  "versions": package_versions(), "verification": asdict(verification) if verification else None}
        write_json(directory / (STEM_FILE + ".json"), {**common, "onnx": STEM_FILE, "onnx_sha256": stem_sha, "part": "stem",
                                                        "partner": HEAD_FILE, "partner_sha256": head_sha}, sort_keys=True)
        write_json(directory / (HEAD_FILE + ".json"), {**common, "onnx": HEAD_FILE, "onnx_sha256": head_sha, "part": "head",
                                                        "partner": STEM_FILE, "partner_sha256": stem_sha, "inti_nodes": n_inti},
                   sort_keys=True)
        manifest = {**common, "stem": {"onnx": STEM_FILE, "sha256": stem_sha}, "head": {"onnx": HEAD_FILE, "sha256": head_sha},
                    "inti_nodes": n_inti}
        write_json(directory / PAIR_MANIFEST, manifest, sort_keys=True)
    return StreamExportResult(directory, stem_path, head_path, manifest, verification)
