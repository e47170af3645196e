"""The default batch profile tunes an engine for the batch it is served at (issue 28, item 7).

TensorRT picks its kernels for the profile's `opt` shape; Triton's dynamic batcher prefers max/2 and
max (docs/serving.md), so the default profile is 1:8:8, and the manifest records min/opt/max for
every input (the repository reads `opt` from there). A real TensorRT-RTX build, without a GPU.
"""

from __future__ import annotations

import pytest

from inti_export.errors import RuntimeUnavailableError
from inti_export.runtime.manifest import load_manifest
from inti_export.runtime.trt import BuildConfig, build_engine, load_trt_module


def _rtx_missing() -> str:
    try:
        load_trt_module("tensorrt-rtx")
    except RuntimeUnavailableError as e:
        return str(e)
    return ""


@pytest.mark.trt
@pytest.mark.skipif(bool(_rtx_missing()), reason=_rtx_missing() or "-")
def test_default_build_records_opt_at_the_max_batch(tmp_path, toy_onnx):
    engine = tmp_path / "default.engine"
    manifest = build_engine(toy_onnx, engine, BuildConfig(runtime="tensorrt-rtx"))
    assert manifest.profile_batch == load_manifest(engine).profile_batch == (1, 8, 8)  # DEFAULT_BATCH
    (profile,) = manifest.profiles
    assert profile["input"] == "video"
    assert [profile[k][0] for k in ("min", "opt", "max")] == [1, 8, 8]
    assert profile["opt"][1:] == profile["max"][1:] == [4, 3, 8, 8]
