"""Inputs of the weight-predict-and-blend step, and a runner for Triton's CPU interpreter.

Triton picks compiler or interpreter when it is imported (TRITON_INTERPRET=1), for its own helper
functions too, so the interpreter cases run in a child process started with that variable, while the
test process keeps a normal triton (the AOT compile tests need it):

    python plugin_cases.py CASES.json RESULTS.pt

CASES.json holds a list of {"id", "lead", "d", "d_ctx", "dtype", "logit_scale", "weights", "via"}
("weights": a dtype for the four weight tensors, default the activation dtype; "via": "op_cuda" to
go through the op's CUDA implementation, with a and b as strided views and h in fp16, instead of
the launcher); RESULTS.pt maps each id to {"y": kernel output, "ref": reference output} or
{"error": message}.
"""

from __future__ import annotations

import json
import sys
import warnings

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def make_inputs(lead, d, d_ctx, dtype=torch.float32, device="cpu", seed=0, logit_scale=2.0, weight_dtype=None):
    """(h, a, b, w1, b1, w2, b2) with `lead` leading dims, width D and context width D' (4D' = K)."""
    g = torch.Generator().manual_seed(seed)
    k = 4 * d_ctx
    h = torch.randn(*lead, k, generator=g)  # (..., 4D')
    a = torch.randn(*lead, d, generator=g)  # (..., D)
    b = torch.randn(*lead, d, generator=g)
    w1 = torch.randn(d, k, generator=g) / k**0.5  # pre-activations ~ N(0, 1)
    b1 = 0.1 * torch.randn(d, generator=g)
    w2 = logit_scale * torch.randn(2, d, generator=g) / d**0.5  # logits ~ O(logit_scale)
    b2 = 0.1 * torch.randn(2, generator=g)
    weight_dtype = dtype if weight_dtype is None else weight_dtype
    acts = tuple(t.to(device=device, dtype=dtype) for t in (h, a, b))
    weights = tuple(t.to(device=device, dtype=weight_dtype) for t in (w1, b1, w2, b2))
    return acts + weights


def run_cases(cases: list[dict]) -> dict:
    from inti_export.plugins.reference import token_interpolate_reference
    from inti_export.plugins.triton_kernel import interpreter_enabled, token_interpolate_triton

    if not interpreter_enabled():
        raise RuntimeError("run with TRITON_INTERPRET=1 in the environment")
    results = {}
    for case in cases:
        dtype = DTYPES[case["dtype"]]
        weights = DTYPES[case.get("weights", case["dtype"])]
        inputs = make_inputs(
            tuple(case["lead"]), case["d"], case["d_ctx"], dtype,
            logit_scale=case.get("logit_scale", 2.0), weight_dtype=weights,
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # numpy's exp overflow on saturated logits
                if case.get("via") == "op_cuda":
                    from inti_export.plugins.torch_op import token_interpolate_cuda

                    h, a, b, *weights = inputs
                    pairs = torch.stack([a, b], dim=-2)  # (..., 2, D): a, b become strided views
                    inputs = (h.half(), pairs[..., 0, :], pairs[..., 1, :], *weights)
                    y = token_interpolate_cuda(*inputs)
                else:
                    y = token_interpolate_triton(*inputs)
            results[case["id"]] = {"y": y, "ref": token_interpolate_reference(*inputs)}
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails with it
            results[case["id"]] = {"error": f"{type(e).__name__}: {e}"}
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        torch.save(run_cases(json.load(f)), sys.argv[2])
