"""Fixtures for the plugin tests: random inputs of the weight-predict-and-blend step, tolerances.

Tolerances, as a fraction of the output's scale max|y_ref| (asserted as atol, rtol=0):
- fp32 1e-5: kernel and reference both multiply in IEEE fp32 and differ only in summation order
  (about K * 2**-24 relative: ~4e-6 for K=64, more only in the worst case at K=3072).
- fp16 2e-3: both compute in fp32 and round y to fp16 once; a value near a rounding boundary can
  land one ulp apart, and one fp16 ulp is 2**-10 ~ 9.8e-4 of the value (<= the scale).
- bf16 2e-2: the same argument with one bf16 ulp = 2**-7 ~ 7.8e-3.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
CASES_SCRIPT = Path(__file__).with_name("plugin_cases.py")

_spec = importlib.util.spec_from_file_location("inti_plugin_cases", CASES_SCRIPT)
plugin_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin_cases)


def assert_matches(y: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    assert y.dtype == ref.dtype and y.shape == ref.shape, (y.dtype, y.shape, ref.dtype, ref.shape)
    scale = ref.float().abs().max().item() if ref.numel() else 1.0
    torch.testing.assert_close(y.float(), ref.float(), rtol=0.0, atol=TOLERANCE[dtype] * max(scale, 1e-6))


def run_in_interpreter(cases: list[dict], tmp_dir: Path, timeout: float = 300) -> dict:
    """Run `cases` (see plugin_cases.py) through the Triton interpreter in a child process."""
    cases_path, results_path = tmp_dir / "cases.json", tmp_dir / "results.pt"
    cases_path.write_text(json.dumps(cases))
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(CASES_SCRIPT), str(cases_path), str(results_path)],
        env=env, capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"interpreter child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return torch.load(results_path)


@pytest.fixture(scope="session")
def interpreter_runner():
    """run_in_interpreter(cases, tmp_dir) -> results, see plugin_cases.py."""
    return run_in_interpreter


@pytest.fixture(scope="session")
def aot_compile():
    """compile_aot for a named GPU target without a GPU, each distinct compile done once per session.

    aot_compile(act, weight=None, arch=90, **options) -> CompiledKernel; options as for compile_aot.
    """
    pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget

    from inti_export.plugins.triton_aot import compile_aot

    compiled = {}

    def compile_(act, weight=None, *, arch=90, **options):
        weight = act if weight is None else weight
        options = {k: v for k, v in options.items() if v is not None and v is not False}
        key = (act, weight, arch, tuple(sorted(options.items())))
        if key not in compiled:
            compiled[key] = compile_aot(act, weight, target=GPUTarget("cuda", arch, 32), **options)
        return compiled[key]

    return compile_


@pytest.fixture
def step_inputs():
    """Factory: (h, a, b, w1, b1, w2, b2), see plugin_cases.make_inputs."""
    return plugin_cases.make_inputs


@pytest.fixture
def check_close():
    return assert_matches
