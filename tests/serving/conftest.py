"""Fixtures for the serving tests: test-tiny's repository, and one real tritonserver for the session.

The server tests need the tritonserver of the nvidia-pytriton wheel, tritonclient, and a stub-ready
interpreter (shared libpython, NumPy 1 for the stub): `.ci/run` sets them up (docs/serving.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_helpers import running_server


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory, tiny_onnx) -> Path:
    """`triton-repo --backend python --video` for test-tiny."""
    from inti_export.serving import RepoConfig, write_triton_repo

    repo = tmp_path_factory.mktemp("triton") / "repo"
    write_triton_repo(tiny_onnx.onnx_path, repo, RepoConfig(video=True))
    return repo


@pytest.fixture(scope="session")
def tiny_server(tiny_repo):
    """One tritonserver on free ports over `tiny_repo`; stopped (whole process group) after the session."""
    with running_server(tiny_repo, ready_timeout=240) as server:
        yield server
