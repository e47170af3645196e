"""The fused Triton kernel against the reference: in Triton's CPU interpreter (a child process), and
on a GPU when one is present."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from inti_export.errors import InputShapeError, RuntimeUnavailableError
from inti_export.plugins import triton_kernel as tk
from inti_export.plugins.reference import token_interpolate_reference

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# (leading dims, D, D'): batch 1 and 7, odd and even token counts, D and 4D' multiples of the
# interpreter's 16-wide blocks or not (D = 48 = 3 blocks, D = 40 and 4D' = 40: masked tails)
SHAPES = [
    ((1, 5), 32, 16),
    ((1, 16), 48, 16),
    ((7, 17), 32, 16),
    ((7, 17), 48, 16),
    ((2, 3, 5), 40, 10),
]


def _case_id(lead, d, d_ctx, dtype, extra=""):
    return f"{'x'.join(map(str, lead))}-D{d}-Dc{d_ctx}-{dtype}{extra}"


INTERPRETER_CASES = [
    {"id": _case_id(lead, d, dc, dt), "lead": lead, "d": d, "d_ctx": dc, "dtype": dt}
    for dt in DTYPES
    for lead, d, dc in SHAPES
] + [
    # logits in the hundreds: the weights saturate to exactly 0 and 1, as in the reference
    {"id": "saturated", "lead": (1, 17), "d": 32, "d_ctx": 16, "dtype": "float32", "logit_scale": 500.0},
    # fp16 activations with fp32 weights (w1 is rounded to fp16 for the matmul; the reference keeps it)
    {"id": "fp16-act-fp32-weights", "lead": (1, 5), "d": 32, "d_ctx": 16, "dtype": "float16", "weights": "float32"},
    # the custom op's CUDA implementation (run on CPU tensors here): strided a, b and an fp16 h
    {"id": "op-cuda-impl", "lead": (2, 5), "d": 32, "d_ctx": 16, "dtype": "float32", "via": "op_cuda"},
]


@pytest.fixture(scope="module")
def interpreter_results(interpreter_runner, tmp_path_factory):
    return interpreter_runner(INTERPRETER_CASES, tmp_path_factory.mktemp("interp"))


@pytest.mark.parametrize("case", INTERPRETER_CASES, ids=[c["id"] for c in INTERPRETER_CASES])
def test_interpreter_matches_reference(interpreter_results, check_close, case):
    result = interpreter_results[case["id"]]
    assert "error" not in result, result.get("error")
    check_close(result["y"], result["ref"], DTYPES[case["dtype"]])


def test_no_tokens_launches_nothing(step_inputs):
    inputs = step_inputs((0, 5), 32, 16)
    assert tk.token_interpolate_triton(*inputs).shape == (0, 5, 32)


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda x: {**x, "a": x["a"][:1]}, "a and b must have one shape"),
        (lambda x: {**x, "h": x["h"][..., ::2]}, "not contiguous"),
        (lambda x: {**x, "w1": x["w1"][:, :8].contiguous()}, r"w1 has shape \(32, 8\), expected \(32, 64\)"),
        (lambda x: {**x, "b2": x["b2"][:1]}, r"b2 has shape \(1,\)"),
        (lambda x: {**x, "h": x["h"].half()}, "must share one dtype"),
        (lambda x: {**x, "a": x["a"].double(), "b": x["b"].double()}, "a has dtype torch.float64"),
        (lambda x: {**x, "h": x["h"][:, :4].contiguous()}, "leading dims of a"),
        (lambda x: {**x, "out": torch.empty(3)}, "out must be a contiguous"),
    ],
    ids=["a-vs-b-shape", "non-contiguous", "w1-shape", "b2-shape", "mixed-activations", "float64",
         "h-leading", "out-shape"],
)
def test_bad_inputs_name_the_value(step_inputs, change, match):
    names = ("h", "a", "b", "w1", "b1", "w2", "b2")
    x = change(dict(zip(names, step_inputs((2, 5), 32, 16), strict=True)))
    with pytest.raises(InputShapeError, match=match):
        tk.token_interpolate_triton(*(x[n] for n in names), out=x.get("out"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error")
def test_cpu_tensors_need_the_interpreter(step_inputs):
    with pytest.raises(RuntimeUnavailableError, match="TRITON_INTERPRET=1"):
        tk.token_interpolate_triton(*step_inputs((1, 5), 32, 16))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("lead,d,d_ctx", [*SHAPES, ((2, 4, 197), 768, 192)], ids=str)
def test_gpu_matches_reference(step_inputs, check_close, lead, d, d_ctx, dtype):
    inputs = step_inputs(lead, d, d_ctx, dtype, device="cuda")
    ref = token_interpolate_reference(*inputs)
    check_close(tk.token_interpolate_triton(*inputs), ref, dtype)  # autotuned
    out = torch.empty_like(inputs[1])
    tk.token_interpolate_triton(*inputs, out=out, config=tk.AOT_CONFIGS[dtype])  # what TensorRT bakes in
    check_close(out, ref, dtype)
