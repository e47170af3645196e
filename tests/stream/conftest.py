"""Stream fixtures: real consecutive frames at test-tiny's size, and the split export of test-tiny."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_frames(tiny_clips):
    """32 real preprocessed frames in a row, (32, 3, 32, 32): the 4 shipped clips of test-tiny one after another."""
    return np.ascontiguousarray(tiny_clips.clips.reshape(-1, *tiny_clips.clips.shape[2:]))


@pytest.fixture(scope="session")
def tiny_stream(tmp_path_factory):
    """test-tiny's split pair, written once per session by the CLI: `inti-export onnx --preset test-tiny --stream -o DIR`.
    Returns (DIR, what the command printed)."""
    from typer.testing import CliRunner

    from inti_export.cli import app

    directory = tmp_path_factory.mktemp("stream") / "tiny-stream"
    res = CliRunner().invoke(app, ["onnx", "--preset", "test-tiny", "--stream", "-o", str(directory)])
    assert res.exit_code == 0, res.output
    return directory, res.stdout
