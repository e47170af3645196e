"""Shared fixtures: tiny presets, real video clips, session-scoped artefacts."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_model():
    from inti_export.models import create_model

    return create_model("test-tiny")


@pytest.fixture
def tiny_video():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 8, 3, 32, 32, generator=g)


@pytest.fixture(scope="session")
def shipped_videos():
    from inti_export.calibration.clips import shipped_videos_dir

    return shipped_videos_dir()


@pytest.fixture(scope="session")
def tiny_clips(tiny_model, shipped_videos):
    """Real frames: 4 clips of the shipped mp4s at test-tiny's size, (4, 8, 3, 32, 32)."""
    from inti_export.calibration.clips import load_clips, preprocess_for

    return load_clips(shipped_videos, preprocess_for(tiny_model.cfg))


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_model, tiny_clips):
    """test-tiny exported once per session (function form, dynamic batch), verified on real clips."""
    from inti_export.exporter import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "test-tiny.onnx"
    return export_onnx(tiny_model, path, clips=tiny_clips.clips[:2], clip_names=tiny_clips.names[:2])


def tiny_engine_runtime() -> str | None:
    """The runtime `tiny_engine` builds with: TensorRT-RTX when it imports (it builds without a GPU),
    else full TensorRT; None when neither imports."""
    import importlib

    for runtime, name in (("tensorrt-rtx", "tensorrt_rtx"), ("tensorrt", "tensorrt")):
        try:
            importlib.import_module(name)
            return runtime
        except (ImportError, OSError):
            continue
    return None


TINY_ENGINE_BATCH = (1, 2, 4)  # the profile of `tiny_engine`: min 1, opt 2, max 4


@pytest.fixture(scope="session")
def tiny_engine(tmp_path_factory, tiny_onnx):
    """(engine, manifest) built once from `tiny_onnx` with a 1:2:4 batch profile (`tiny_engine_runtime`);
    None without a TensorRT module."""
    runtime = tiny_engine_runtime()
    if runtime is None:
        return None
    from inti_export.runtime.trt import BuildConfig, build_engine

    path = tmp_path_factory.mktemp("engine") / "test-tiny.engine"
    build_engine(tiny_onnx.onnx_path, path, BuildConfig(runtime=runtime, batch=TINY_ENGINE_BATCH))
    return path, path.with_name(path.name + ".json")
