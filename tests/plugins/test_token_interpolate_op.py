"""The custom op `inti::token_interpolate`: reference on CPU, Triton on CUDA, opcheck, torch.compile."""

from __future__ import annotations

import pytest
import torch

from inti_export.plugins import op
from inti_export.plugins.reference import token_interpolate_reference


def test_op_imports_without_triton_or_tensorrt():
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "for name in ('triton', 'tensorrt', 'tensorrt_rtx'):\n"
        "    sys.modules[name] = None  # as if not installed: importing them raises ImportError\n"
        "import inti_export.plugins.op, inti_export.plugins.trt_plugin as t\n"
        "print(t.plugin_available(), t.plugin_available('tensorrt_rtx'))\n"
        "x = torch.zeros(2, 3, 8)\n"
        "print(tuple(torch.ops.inti.token_interpolate(torch.zeros(2, 3, 4), x, x, torch.zeros(8, 4), "
        "torch.zeros(8), torch.zeros(2, 8), torch.zeros(2)).shape))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [
        "(False, 'tensorrt not installed') (False, 'TensorRT-RTX does not support user plugins')",
        "(2, 3, 8)",
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_op_matches_reference_on_cpu(step_inputs, dtype):
    inputs = step_inputs((2, 3, 5), 32, 16, dtype)
    y = torch.ops.inti.token_interpolate(*inputs)
    torch.testing.assert_close(y, token_interpolate_reference(*inputs), rtol=0, atol=0)


def test_op_takes_strided_pair_views(step_inputs):
    """The model passes a, b as views of (B, T/2, 2, N, D); the output is contiguous either way."""
    h, a, b, *weights = step_inputs((2, 3, 5), 32, 16)
    pairs = torch.stack([a, b], dim=2)  # (B, T/2, 2, N, D)
    y = op.token_interpolate(h, pairs[:, :, 0], pairs[:, :, 1], *weights)
    assert y.is_contiguous()
    torch.testing.assert_close(y, token_interpolate_reference(h, a, b, *weights))


def test_opcheck_on_cpu(step_inputs):
    inputs = step_inputs((2, 5), 32, 16)
    torch.library.opcheck(torch.ops.inti.token_interpolate.default, inputs)


def test_opcheck_with_strided_inputs(step_inputs):
    h, a, b, *weights = step_inputs((2, 5), 32, 16)
    pairs = torch.stack([a, b], dim=1)  # (2, 2, 5, D)
    torch.library.opcheck(torch.ops.inti.token_interpolate.default, (h, pairs[:, 0], pairs[:, 1], *weights))


def test_torch_compile_keeps_the_op(step_inputs):
    """fullgraph compile (aot_eager: traces through the fake impl, no C++ toolchain needed)."""
    inputs = step_inputs((2, 5), 32, 16)

    def f(h, a, b, w1, b1, w2, b2):
        return op.token_interpolate(h * 1.0, a, b, w1, b1, w2, b2) + 0.0

    torch._dynamo.reset()
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(*inputs), token_interpolate_reference(*inputs))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_op_runs_triton_on_cuda(step_inputs, check_close, dtype):
    h, a, b, *weights = step_inputs((2, 4, 197), 768, 192, dtype, device="cuda")
    pairs = torch.stack([a, b], dim=2)
    y = op.token_interpolate(h, pairs[:, :, 0], pairs[:, :, 1], *weights)
    check_close(y, token_interpolate_reference(h, a, b, *weights), dtype)
    torch.library.opcheck(torch.ops.inti.token_interpolate.default, (h, a, b, *weights))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_op_on_cuda_takes_fp16_context_with_fp32_tokens(step_inputs, check_close):
    """Under autocast, h leaves a Linear in fp16 while the token stream a, b stays fp32."""
    h, a, b, *weights = step_inputs((2, 5), 32, 16, torch.float32, device="cuda")
    y = op.token_interpolate(h.half(), a, b, *weights)
    check_close(y, token_interpolate_reference(h.half(), a, b, *weights), torch.float32)
