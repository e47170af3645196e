"""The custom op `inti::token_interpolate`: registration, schema and fake impl on the CPU (where the op
is the reference itself), opcheck and torch.compile; the Triton kernel against the reference on CUDA."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from inti_export.plugins import torch_op as op
from inti_export.plugins.reference import token_interpolate_reference

SCHEMA = "inti::token_interpolate(Tensor h, Tensor a, Tensor b, Tensor w1, Tensor b1, Tensor w2, Tensor b2) -> Tensor"


def test_op_imports_without_triton_or_tensorrt():
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "for name in ('triton', 'tensorrt', 'tensorrt_rtx'):\n"
        "    sys.modules[name] = None  # as if not installed: importing them raises ImportError\n"
        "import inti_export.plugins.torch_op, inti_export.plugins.trt_plugin as t\n"
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


def test_op_registration_and_schema():
    """One schema; the CUDA key runs the Triton route, every other device the reference (CompositeExplicit)."""
    assert str(torch.ops.inti.token_interpolate.default._schema) == SCHEMA
    assert op.OP_NAME == "inti::token_interpolate"
    has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key
    assert has_kernel(op.OP_NAME, "CUDA") and has_kernel(op.OP_NAME, "CompositeExplicitAutograd")
    assert has_kernel(op.OP_NAME, "Meta")  # the fake impl serves meta tensors too


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_fake_impl_shape_dtype_and_layout(step_inputs, dtype):
    """Meta and fake tensors: y is a contiguous tensor shaped and typed like a, also for strided views."""
    h, a, b, *weights = step_inputs((2, 3, 5), 32, 16, dtype)
    pairs = torch.stack([a, b], dim=2)  # (B, T/2, 2, N, D): a, b become strided views
    views = (h, pairs[:, :, 0], pairs[:, :, 1], *weights)
    assert not views[1].is_contiguous()
    y = torch.ops.inti.token_interpolate(*(t.to("meta") for t in views))
    assert (y.device.type, y.shape, y.dtype, y.is_contiguous()) == ("meta", a.shape, dtype, True)
    with FakeTensorMode() as mode:
        y = torch.ops.inti.token_interpolate(*(mode.from_tensor(t) for t in views))
    assert (y.shape, y.dtype, y.is_contiguous()) == (a.shape, dtype, True)


def test_op_takes_strided_pair_views(step_inputs):
    """The model passes a, b as views of (B, T/2, 2, N, D); the output is contiguous either way."""
    h, a, b, *weights = step_inputs((2, 3, 5), 32, 16)
    pairs = torch.stack([a, b], dim=2)  # (B, T/2, 2, N, D)
    y = op.token_interpolate(h, pairs[:, :, 0], pairs[:, :, 1], *weights)
    assert y.is_contiguous() and y.shape == a.shape and y.dtype == a.dtype


def test_opcheck_on_cpu(step_inputs):
    inputs = step_inputs((2, 5), 32, 16)
    torch.library.opcheck(torch.ops.inti.token_interpolate.default, inputs)


def test_opcheck_with_strided_inputs(step_inputs):
    h, a, b, *weights = step_inputs((2, 5), 32, 16)
    pairs = torch.stack([a, b], dim=1)  # (2, 2, 5, D)
    torch.library.opcheck(torch.ops.inti.token_interpolate.default, (h, pairs[:, 0], pairs[:, 1], *weights))


def test_torch_compile_keeps_the_op(step_inputs):
    """fullgraph compile traces through the fake impl and keeps one op node (no C++ toolchain needed)."""
    inputs = step_inputs((2, 5), 32, 16)
    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm)
        return torch._dynamo.backends.debugging.aot_eager(gm, example_inputs)

    def f(h, a, b, w1, b1, w2, b2):
        return op.token_interpolate(h * 1.0, a, b, w1, b1, w2, b2) + 0.0

    torch._dynamo.reset()
    compiled = torch.compile(f, backend=recording_backend, fullgraph=True)
    torch.testing.assert_close(compiled(*inputs), token_interpolate_reference(*inputs))
    (gm,) = graphs
    targets = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
    assert sum("inti.token_interpolate" in t for t in targets) == 1, targets


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
