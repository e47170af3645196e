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
