"""benchmarks/gpu_checks.py's model checks run on the CPU on test-tiny, so the GPU script cannot rot
between GPU sessions (the kernel checks need CUDA and skip with exit 77 here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

_path = Path(__file__).parents[2] / "benchmarks" / "gpu_checks.py"
_spec = importlib.util.spec_from_file_location("gpu_checks", _path)
gpu_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_checks)


def test_stream_and_layers_on_cpu(tmp_path):
    assert gpu_checks.main(["stream", "--device", "cpu", "--preset", "test-tiny", "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "stream.json").read_text())["results"][0]
    assert row["passed"] and row["max_err_over_scale"] < 1e-5 and row["stem_blocks"] == 1
    assert gpu_checks.main(["layers", "--device", "cpu", "--preset", "test-tiny", "--out", str(tmp_path)]) == 0
    parts = {r["part"] for r in json.loads((tmp_path / "layers.json").read_text())["rows"]}
    assert {"block0", "block3", "inti1", "inti1.context", "inti1.blend", "inti3"} <= parts


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip without a GPU")
def test_cuda_checks_skip_without_a_gpu(tmp_path, capsys):
    for check in ("kernel", "blend", "aot-entry", "stream"):
        assert gpu_checks.main([check, "--out", str(tmp_path)]) == gpu_checks.SKIP
    assert "SKIP: torch sees no CUDA GPU" in capsys.readouterr().out
