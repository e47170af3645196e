"""Shared fixtures: tiny presets, real video clips, session-scoped artefacts."""

from __future__ import annotations

import os

import numpy as np
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
    from inti_export.video.discover import shipped_videos_dir

    return shipped_videos_dir()


@pytest.fixture(scope="session")
def tiny_clips(tiny_model, shipped_videos):
    """Real frames: 4 clips of the shipped mp4s at test-tiny's size, (4, 8, 3, 32, 32)."""
    from inti_export.video.clipset import load_clips
    from inti_export.video.preprocess import preprocess_for

    return load_clips(shipped_videos, preprocess_for(tiny_model.cfg))


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """test-tiny exported once per session by the CLI, `inti-export onnx --preset test-tiny` (function
    form, dynamic batch, verified on two shipped clips): `onnx_path`, `manifest_path`, and `stdout` (what
    the command printed, checked by tests/exporter/test_export.py)."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from inti_export.cli import app

    path = tmp_path_factory.mktemp("onnx") / "test-tiny.onnx"
    res = CliRunner().invoke(app, ["onnx", "--preset", "test-tiny", "-o", str(path)])
    assert res.exit_code == 0, res.output
    return SimpleNamespace(onnx_path=path, manifest_path=path.with_name(path.name + ".json"), stdout=res.stdout)


def tiny_engine_runtime() -> str | None:
    """The runtime `tiny_engine` builds with, chosen by the GPU's compute capability (`pick_runtime`):
    TensorRT-RTX without a GPU or on one it supports, else full TensorRT; None when neither can."""
    from inti_export.runtime.trt.config import gpu_compute_capability
    from inti_export.runtime.trt.loader import pick_runtime

    return pick_runtime(gpu_compute_capability())[0]


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


# -- the motion task (docs/task.md): the shipped checkpoint and small labelled splits ----------------
@pytest.fixture(scope="session")
def task_checkpoint():
    """The trained task-inti checkpoint shipped in the package."""
    from importlib import resources

    return resources.files("inti_export.models").joinpath("checkpoints", "task-inti.safetensors")


@pytest.fixture(scope="session")
def task_split(tmp_path_factory):
    """24 test-split videos with labels.csv beside them (6 per class), written once per session."""
    from inti_export.tasks.motion import make_split

    folder = tmp_path_factory.mktemp("task-split")
    make_split(folder, "test", 24)
    return folder


@pytest.fixture(scope="session")
def task_calib_videos(tmp_path_factory):
    """4 train-split videos to calibrate on: never the labelled (held-out) test videos."""
    from inti_export.tasks.motion import make_split

    folder = tmp_path_factory.mktemp("task-calib")
    make_split(folder, "train", 4)
    (folder / "labels.csv").unlink()
    return folder


@pytest.fixture(scope="session")
def task_onnx(tmp_path_factory, task_checkpoint, task_split):
    """task-inti with the shipped checkpoint, exported once per session."""
    from inti_export.exporter import export_onnx
    from inti_export.models import create_model
    from inti_export.video.labels import labelled_clips

    model = create_model("task-inti", checkpoint=str(task_checkpoint))
    clips, _, _ = labelled_clips(model.cfg, task_split, task_split / "labels.csv")
    return export_onnx(model, tmp_path_factory.mktemp("task-onnx") / "task.onnx", clips=clips[:2]).onnx_path


@pytest.fixture(scope="session")
def task_bad_checkpoint(tmp_path_factory, task_checkpoint):
    """The shipped checkpoint with its patch embedding perturbed (3 std of noise): it loses accuracy."""
    import torch
    from safetensors.torch import load_file, save_file

    sd = load_file(str(task_checkpoint))
    w = sd["visual.conv1.weight"]
    sd["visual.conv1.weight"] = w + 3 * w.std() * torch.randn(w.shape, generator=torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("task-bad") / "bad.safetensors"
    save_file(sd, str(path))
    return path


@pytest.fixture(scope="session")
def task_bad_onnx(tmp_path_factory, task_onnx, task_bad_checkpoint):
    """`task_onnx` carrying the perturbed checkpoint's weights: what exporting that checkpoint gives, made
    without a second export by swapping every initializer that differs (only the patch embedding)."""
    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    sd = load_file(str(task_bad_checkpoint))
    model = onnx.load(str(task_onnx))
    swapped = []
    for init in model.graph.initializer:
        if init.name in sd and not np.array_equal(numpy_helper.to_array(init), sd[init.name]):
            init.CopyFrom(numpy_helper.from_array(sd[init.name], init.name))
            swapped.append(init.name)
    assert swapped == ["visual.conv1.weight"], swapped
    path = tmp_path_factory.mktemp("task-bad-onnx") / "bad.onnx"
    onnx.save(model, str(path))
    return path
