"""ONNX side of `inti::token_interpolate`: the `inti.TokenInterpolate` node and its ONNX function.

The node's definition ships inside every model as a model-local function of standard opset-18
ops, so any runtime can inline it; a TensorRT plugin registered as `inti::TokenInterpolate`
(`plugins/trt_plugin.py`) can replace it instead.
"""

from __future__ import annotations

import math

import onnx
import onnxscript
from onnxscript import opset18 as op

from inti_export.vocab import OP_DOMAIN as DOMAIN
from inti_export.vocab import OP_TYPE
from inti_export.vocab import OP_VERSION as VERSION

INPUTS = ("h", "a", "b", "w1", "b1", "w2", "b2")

inti_opset = onnxscript.values.Opset(DOMAIN, VERSION)

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


@onnxscript.script(opset=inti_opset, default_opset=op)
def TokenInterpolate(h, a, b, w1, b1, w2, b2):
    """h (..., 4D'), a/b (..., D), w1 (D, 4D'), b1 (D), w2 (2, D), b2 (2) -> (..., D).

    y = w_a * a + w_b * b, (w_a, w_b) = Softmax(Gelu(h @ w1^T + b1) @ w2^T + b2).
    """
    pre = op.Add(op.MatMul(h, op.Transpose(w1, perm=[1, 0])), b1)  # (..., D)
    half = op.CastLike(0.5, pre)
    one = op.CastLike(1.0, pre)
    hidden = op.Mul(op.Mul(half, pre), op.Add(one, op.Erf(op.Mul(pre, op.CastLike(_INV_SQRT2, pre)))))
    logits = op.Add(op.MatMul(hidden, op.Transpose(w2, perm=[1, 0])), b2)  # (..., 2)
    w = op.Softmax(logits, axis=-1)  # (..., 2)
    starts0 = op.Constant(value_ints=[0])
    starts1 = op.Constant(value_ints=[1])
    ends2 = op.Constant(value_ints=[2])
    axes = op.Constant(value_ints=[-1])
    wa = op.Slice(w, starts0, starts1, axes)  # (..., 1)
    wb = op.Slice(w, starts1, ends2, axes)  # (..., 1)
    return op.Add(op.Mul(wa, a), op.Mul(wb, b))


def register_schema() -> None:
    """Declare `inti.TokenInterpolate` to onnx's schema registry (this process only), so the
    exporter can emit the node; the definition is attached afterwards as a local function."""
    if onnx.defs.has(OP_TYPE, VERSION, DOMAIN):
        return
    param = onnx.defs.OpSchema.FormalParameter
    schema = onnx.defs.OpSchema(
        OP_TYPE,
        DOMAIN,
        VERSION,
        doc=TokenInterpolate.__doc__ or "",
        inputs=[param(name, "T") for name in INPUTS],
        outputs=[param("y", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"], "float types")],
    )
    onnx.defs.register_schema(schema)


def translate_token_interpolate(h, a, b, w1, b1, w2, b2):
    """torch.onnx custom translation of `inti::token_interpolate`: one `inti.TokenInterpolate` node."""
    register_schema()
    return inti_opset.TokenInterpolate(h, a, b, w1, b1, w2, b2)


def function_proto():
    """The FunctionProto of `inti.TokenInterpolate`."""
    return TokenInterpolate.to_function_proto()
