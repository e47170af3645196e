"""ONNX -> engine in one step: convert the ONNX to a precision (calibration/), then build it (runtime/).

    convert_and_build(onnx, engine, BuildConfig(), "fp16") -> EngineManifest

Orchestration across layers lives here, so runtime/ never imports calibration/.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from inti_export.errors import EngineError
from inti_export.runtime.manifest import EngineManifest
from inti_export.runtime.trt import BuildConfig, BuildProgress, build_engine, onnx_precision, read_onnx
from inti_export.runtime.trt.build import check_engine_paths
from inti_export.vocab import META_PRECISION, Precision, values

log = logging.getLogger(__name__)
PRECISIONS = values(Precision)


def converted_onnx_path(engine_path: str | os.PathLike, precision: str) -> Path:
    """Where the converted ONNX goes: `model.fp16.onnx` beside `model.engine`."""
    engine_path = Path(engine_path)
    return engine_path.with_name(f"{engine_path.stem}.{precision}.onnx")


def convert_and_build(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    config: BuildConfig | None = None,
    precision: str | None = None,
    calib_data: str | os.PathLike | None = None,
    progress: BuildProgress | None = None,
    cancel: threading.Event | None = None,
) -> EngineManifest:
    """`build_engine`, after converting the ONNX to `precision` when it carries another one.

    The converted ONNX is written beside the engine (`model.fp16.onnx` for `model.engine`).
    """
    precision = getattr(precision, "value", precision)
    if precision is None:
        return build_engine(onnx_path, engine_path, config, progress, cancel)
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}: choose {', '.join(PRECISIONS)}")
    metadata = {p.key: p.value for p in read_onnx(onnx_path).metadata_props}
    if onnx_precision(metadata, str(onnx_path)) == precision:
        return build_engine(onnx_path, engine_path, config, progress, cancel)
    config = config or BuildConfig()
    converted = converted_onnx_path(engine_path, precision)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    check_engine_paths(onnx_path, engine_path, config.timing_cache)  # before the conversion's work
    check_engine_paths(onnx_path, converted)  # the converted ONNX must not overwrite the input either
    from inti_export.calibration.precision import convert_precision

    log.info("converting %s to %s -> %s", onnx_path, precision, converted)
    convert_precision(onnx_path, precision, converted, calib_data=calib_data, allow_foreign=config.allow_foreign)
    got = onnx_precision({p.key: p.value for p in read_onnx(converted).metadata_props}, str(converted))
    if got != precision:
        raise EngineError(f"convert_precision wrote {converted} with {META_PRECISION}={got!r}, expected {precision!r}")
    return build_engine(converted, engine_path, config, progress, cancel)
