"""A stream pair (stem.onnx + head.onnx, docs/stream.md) converted to one precision, as a new pair folder.

    convert_pair("inti-b16-stream/", "int8", "inti-b16-stream.int8/", calib_data="clips/")  -> PairConversion

FP16/BF16: `convert_precision` on each part. INT8: `ort_quant.ort_quantize_static` itself
(as `calibrate -p int8`: symmetric, per channel, float biases, the projection in FP32), each
part calibrated on what it sees: the stem on the frames of real clips `(F, 3, H, W)`, the head on the
FP32 stem's outputs for the same clips `(B, T, N, D)`. The converted head names the converted stem's
sha256 (`inti.stream.stem_sha256`), so `runtime.stream.load_stream_artifact` accepts the new folder;
its manifests and stream.json say which precision and which partner. The folder appears whole or not
at all.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.calibration.backends import parse_target, quantized_ops
from inti_export.calibration.data import load_calibration_data
from inti_export.calibration.ort_quant import ort_quantize_static
from inti_export.calibration.precision import convert_precision
from inti_export.errors import CalibrationError
from inti_export.fileio import sha256_file, write_json
from inti_export.vocab import (
    HEAD_FILE,
    HEAD_INPUT,
    META_CALIBRATION,
    META_PRECISION,
    META_STEM_SHA,
    PAIR_MANIFEST,
    STEM_FILE,
    STEM_INPUT,
    CalibrationMethod,
    Precision,
)

logger = logging.getLogger(__name__)


@dataclass
class PairConversion:
    directory: Path
    precision: str
    stem_sha256: str
    head_sha256: str
    calibration: dict[str, Any]  # clips and source, for INT8


def check_pair_output(src: Path, out: Path) -> None:
    """One line, before any work, if `out` cannot become a new pair folder."""
    if out.resolve() == src.resolve():
        raise CalibrationError(f"--output {out} is the pair folder itself: give a new folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CalibrationError(f"--output {out} exists and is not an empty folder: give a new folder")
    if not out.parent.is_dir():
        raise CalibrationError(f"--output folder {out.parent} does not exist: create it first")


def convert_pair(
    pair_dir: str | os.PathLike,
    precision: Precision | str,
    out_dir: str | os.PathLike,
    *,
    calib_data: str | os.PathLike | None = None,
    clips: int | None = None,
    method: CalibrationMethod | str = CalibrationMethod.max,
) -> PairConversion:
    """`pair_dir`'s stem and head converted to `precision` into the new folder `out_dir` (module docstring)."""
    from inti_export.runtime.stream import load_stream_artifact

    precision = parse_target(precision)
    src, out = Path(pair_dir), Path(out_dir)
    artifact = load_stream_artifact(src)
    if artifact.meta.get(META_PRECISION, "fp32") != "fp32":
        raise CalibrationError(f"{src} is already {artifact.meta[META_PRECISION]}; convert the FP32 pair instead")
    if precision not in (Precision.fp16, Precision.bf16, Precision.int8):
        raise CalibrationError(f"a stream pair converts to fp16, bf16 or int8, not {precision.value}")
    check_pair_output(src, out)
    method = CalibrationMethod(getattr(method, "value", method))
    calibration: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=f".{out.name[:40]}.", dir=out.parent) as tmp:
        work = Path(tmp) / "pair"
        work.mkdir()
        stem, head = work / STEM_FILE, work / HEAD_FILE
        if precision == Precision.int8:
            data = load_calibration_data(calib_data, artifact.head_path, clips)  # (K, T, 3, H, W) real clips
            frames = data.clips.reshape(-1, *data.clips.shape[2:])  # (K*T, 3, H, W)
            stems = _fp32_stems(artifact, frames)  # (K*T, N, D)
            stems = stems.reshape(*data.clips.shape[:2], *stems.shape[1:])  # (K, T, N, D)
            calibration = {"precision": "int8", "method": method.value, "clips": len(data.clips), "source": data.source,
                           "clip_names": data.names, "tool": "onnxruntime.quantization.quantize_static"}
            _quantize(artifact.stem_path, work / "stem.q.onnx", STEM_INPUT, frames, method)
            _quantize(artifact.head_path, work / "head.q.onnx", HEAD_INPUT, stems, method)
            _set_metadata(work / "stem.q.onnx", stem, artifact.stem_path,
                          {**calibration, "part": "stem", "inputs": "frames (F, 3, H, W)"})
            stem_sha = sha256_file(stem)
            _set_metadata(work / "head.q.onnx", head, artifact.head_path,
                          {**calibration, "part": "head", "inputs": "FP32 stem outputs (B, T, N, D)"}, stem_sha)
        else:
            convert_precision(artifact.stem_path, precision, stem)
            stem_sha = sha256_file(stem)
            convert_precision(artifact.head_path, precision, work / "head.c.onnx")
            _set_metadata(work / "head.c.onnx", head, None, None, stem_sha)
        (work / "stem.q.onnx").unlink(missing_ok=True)
        (work / "head.q.onnx").unlink(missing_ok=True)
        (work / "head.c.onnx").unlink(missing_ok=True)
        head_sha = sha256_file(head)
        _write_manifests(src, work, precision.value, stem_sha, head_sha, calibration)
        load_stream_artifact(work)  # the new pair is checked as every reader checks it
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(work, out)
    logger.info("wrote the %s pair %s", precision.value, out)
    return PairConversion(out, precision.value, stem_sha, head_sha, calibration)


def _fp32_stems(artifact, frames: np.ndarray) -> np.ndarray:
    """(F, 3, H, W) -> (F, N, D) through the FP32 stem.onnx, a few frames per call."""
    from inti_export.runtime.stream import OrtStemHead

    pair = OrtStemHead(artifact)
    return np.concatenate([pair.stem(frames[i:i + 16]) for i in range(0, len(frames), 16)])


def _quantize(src: Path, out: Path, input_name: str, samples: np.ndarray, method: CalibrationMethod) -> None:
    """INT8 Q/DQ of `src` as `calibrate -p int8` writes it (s8s8, per channel, the projection FP32), calibrated on
    `samples` fed one at a time (`samples[i:i+1]`) to `input_name`."""
    try:
        ort_quantize_static(src, out, samples, method=method, op_types=quantized_ops(()), input_name=input_name)
    except Exception as e:  # onnxruntime raises anything
        raise CalibrationError(f"onnxruntime quantize_static failed on {src.name}: {type(e).__name__}: {e}") from e


def _set_metadata(converted: Path, out: Path, source: Path | None, calibration: dict | None,
                  stem_sha: str | None = None) -> None:
    """`converted` saved as `out` with `source`'s `inti.*` metadata (INT8), its precision and calibration,
    and (a head) the converted stem's sha256."""
    import onnx

    model = onnx.load(str(converted))
    props = {p.key: p.value for p in model.metadata_props}
    if source is not None:
        props.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in _raw_metadata(source).items()})
        props[META_PRECISION] = "int8"
        props[META_CALIBRATION] = json.dumps(calibration, sort_keys=True)
    if stem_sha is not None:
        props[META_STEM_SHA] = stem_sha
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(out))


def _raw_metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _write_manifests(src: Path, work: Path, precision: str, stem_sha: str, head_sha: str, calibration: dict) -> None:
    """The source pair's manifests and stream.json, updated to the converted files and their partners."""
    shas = {"stem": stem_sha, "head": head_sha}
    for part, file, partner in (("stem", STEM_FILE, "head"), ("head", HEAD_FILE, "stem")):
        data = _read_json(src / (file + ".json"))
        data.update(onnx_sha256=shas[part], partner_sha256=shas[partner], precision=precision,
                    converted_from={"onnx": str(src / file), "sha256": data.get("onnx_sha256")},
                    calibration=calibration or None)
        write_json(work / (file + ".json"), data, sort_keys=True)
    pair = _read_json(src / PAIR_MANIFEST)
    pair.update(precision=precision, converted_from=str(src), calibration=calibration or None,
                stem={"onnx": STEM_FILE, "sha256": stem_sha}, head={"onnx": HEAD_FILE, "sha256": head_sha})
    write_json(work / PAIR_MANIFEST, pair, sort_keys=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CalibrationError(f"cannot read {path} ({e}); re-export the pair with `inti-export onnx --stream`") from e

