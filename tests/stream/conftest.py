"""Stream fixtures: real consecutive frames at test-tiny's size, and the split export of test-tiny."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_frames(tiny_clips):
    """32 real preprocessed frames in a row, (32, 3, 32, 32): the 4 shipped clips of test-tiny one after another."""
    return np.ascontiguousarray(tiny_clips.clips.reshape(-1, *tiny_clips.clips.shape[2:]))
