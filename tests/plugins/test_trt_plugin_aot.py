"""The TensorRT plugin's AOT side: the Triton kernel compiled to PTX on this machine for a GPU target
(`plugins/triton_aot.py`), and the plugin's QDP definitions, which call that compile, against a
stand-in for `tensorrt.plugin`."""

from __future__ import annotations

import importlib
import inspect
import math
import re
import typing
from types import SimpleNamespace

import pytest
import torch

from inti_export.plugins import trt_plugin as tp

# ---- the AOT compile, on this machine, for a GPU target -------------------------------------------


def _entry_params(ptx: str) -> int:
    entry = re.search(r"\.entry\s+\w+\s*\((.*?)\)", ptx, re.S)
    return entry.group(1).count(".param")


def _vector_loads(ptx: str) -> int:
    return len(re.findall(r"ld\.global(?:\.\w+)*\.v[248]\.", ptx))


def _async_copies(ptx: str) -> int:
    return len(re.findall(r"cp\.async\.c[ag]\.", ptx))


@pytest.mark.parametrize(
    "act,weight",
    [(torch.float32, None), (torch.float16, None), (torch.bfloat16, None), (torch.float16, torch.float32)],
    ids=["fp32", "fp16", "bf16", "fp16-act-fp32-weights"],
)
def test_compile_aot_for_sm90(aot_compile, act, weight):
    from inti_export.plugins.triton_aot import MAX_STATIC_SHARED_BYTES
    from inti_export.plugins.triton_kernel import AOT_CONFIGS

    kernel = aot_compile(act, weight)
    entry = re.search(r"\.entry\s+(\w+)\s*\((.*?)\)", kernel.ptx, re.S)
    assert entry and entry.group(1) == kernel.name
    # 7 input pointers, M, D, K, the output pointer; then Triton 3.8's two hidden scratch pointers,
    # which TensorRT pads with null (allowed because the kernel needs no scratch: compile_aot checks
    # it; benchmarks/gpu_suite.sh confirms it on a GPU)
    assert _entry_params(kernel.ptx) == 13
    assert 0 < kernel.shared_mem <= MAX_STATIC_SHARED_BYTES
    assert kernel.num_warps == AOT_CONFIGS[act].num_warps
    assert kernel.block_m == AOT_CONFIGS[act].block_m
    assert kernel.num_stages == AOT_CONFIGS[act].num_stages  # sm_90 fits every pair at 3 stages


@pytest.mark.parametrize(
    "arch,act", [(100, torch.float16), (103, torch.bfloat16), (110, torch.float16)], ids=["sm100", "sm103", "sm110"]
)
def test_compile_aot_fits_shared_memory_with_fp32_weights(aot_compile, arch, act):
    """fp16/bf16 activations with fp32 weights need 57,360 bytes at 3 stages on sm_100/103/110 (issue 18)."""
    from inti_export.plugins.triton_aot import MAX_STATIC_SHARED_BYTES
    from inti_export.plugins.triton_kernel import AOT_CONFIGS

    kernel = aot_compile(act, torch.float32, arch=arch)
    assert kernel.shared_mem <= MAX_STATIC_SHARED_BYTES
    assert kernel.num_stages < AOT_CONFIGS[act].num_stages  # the pipeline was shortened to fit
    assert kernel.target == f"cuda:{arch}" and _entry_params(kernel.ptx) == 13


def test_compile_aot_vectorises_aligned_widths(aot_compile):
    """With D, 4D' multiples of 16 and aligned buffers, the fp16 kernel loads 16 bytes at a time."""
    plain, aligned = aot_compile(torch.float16), aot_compile(torch.float16, aligned=True)
    assert not plain.aligned and aligned.aligned
    assert _vector_loads(plain.ptx) == 0 and _async_copies(plain.ptx) == 0
    assert _vector_loads(aligned.ptx) > 0 and _async_copies(aligned.ptx) > 0
    assert _entry_params(aligned.ptx) == _entry_params(plain.ptx) == 13  # the launch signature is unchanged


def test_compile_aot_caps_the_ptx_isa(aot_compile):
    """An older driver's PTX ISA lowers the compiled one; a newer one cannot raise it past ptxas."""
    low = aot_compile(torch.float16, ptx_version=84)
    assert re.search(r"^\.version 8\.4$", low.ptx, re.M)
    default = re.search(r"^\.version (\S+)$", aot_compile(torch.float16).ptx, re.M).group(1)
    high = aot_compile(torch.float16, ptx_version=999)
    assert re.search(r"^\.version (\S+)$", high.ptx, re.M).group(1) == default


# ---- the QDP definitions, against a stand-in for tensorrt.plugin -----------------------------------


class _FakeShapeExpr:
    """tensorrt.plugin's ShapeExpr (tensorrt/plugin/_tensor.py, TensorRT 10.6 to 11.1), in its API's shape.

    `is_fake` and `is_constant` are properties, `constant_value()` a method; `is_constant` raises for a
    fake expression and `constant_value()` for a non-constant one. `value` None: known at run time only.
    """

    def __init__(self, value=None, fake=False):
        self._value, self._fake = value, fake

    @property
    def is_fake(self):
        return self._fake

    @property
    def is_constant(self):
        if self._fake:
            raise RuntimeError("Not accessible for fake 'ShapeExpr's. Check is_fake to determine accessibility.")
        return self._value is not None

    def constant_value(self):
        if not self.is_constant:
            raise RuntimeError("Not accessible for non-constant shape expressions. Check is_constant.")
        return self._value

    def __mul__(self, other):
        other = other if isinstance(other, _FakeShapeExpr) else _FakeShapeExpr(other)
        if self._fake or other._fake:
            return _FakeShapeExpr(fake=True)
        both = self._value is not None and other._value is not None
        return _FakeShapeExpr(self._value * other._value if both else None)


# the attribute kinds of ShapeExpr in tensorrt/plugin/_tensor.py, which the fake must keep
SHAPE_EXPR_KINDS = {"is_fake": property, "is_constant": property, "constant_value": "method"}


def _attribute_kinds(cls) -> dict:
    kinds = {}
    for name in SHAPE_EXPR_KINDS:
        attr = inspect.getattr_static(cls, name)
        kinds[name] = property if isinstance(attr, property) else "method" if inspect.isfunction(attr) else type(attr)
    return kinds


def _real_shape_expr():
    """tensorrt.plugin's ShapeExpr where it imports (full TensorRT, or a TensorRT-RTX that ships it), else None."""
    for module in ("tensorrt.plugin", "tensorrt_rtx.plugin"):
        try:
            return importlib.import_module(module).ShapeExpr
        except (ImportError, OSError, AttributeError):
            continue
    return None


def test_fake_shape_expr_has_the_real_api_shape():
    """A fake holding plain ints hid issue 28 item 1: the fake keeps ShapeExpr's properties and methods."""
    assert _attribute_kinds(_FakeShapeExpr) == SHAPE_EXPR_KINDS
    real = _real_shape_expr()
    if real is not None:
        assert _attribute_kinds(real) == SHAPE_EXPR_KINDS


def test_constant_reads_shape_exprs_of_both_api_shapes():
    """`_constant` calls ShapeExpr.constant_value() (a method) and reads an attribute holding a value."""
    assert tp._constant(64) == 64
    assert tp._constant(_FakeShapeExpr(64)) == 64
    assert tp._constant(_FakeShapeExpr(None)) is None  # a dynamic dimension
    assert tp._constant(_FakeShapeExpr(fake=True)) is None  # outside a shape context: is_constant raises
    assert tp._constant(SimpleNamespace(is_constant=True, constant_value=48)) == 48


class _FakeDesc:
    def __init__(self, shape, dtype):
        self.shape_expr = [e if isinstance(e, _FakeShapeExpr) else _FakeShapeExpr(e) for e in shape]
        self.dtype = dtype

    @property
    def ndim(self):
        return len(self.shape_expr)

    def like(self):
        return type(self)(self.shape_expr, self.dtype)


def _fake_cdiv(a, b):
    """tensorrt.plugin.cdiv on a ShapeExpr and an int: a ShapeExpr, constant when `a` is."""
    value = a.constant_value() if a.is_constant else None
    return _FakeShapeExpr(None if value is None else -(-value // b))


def _fake_tensorrt():
    """Just enough of tensorrt / tensorrt.plugin to define and call the plugin's functions.

    The decorators enforce the signature rules of tensorrt.plugin's validation (_validate.py):
    register takes annotated TensorDescs; autotune (inputs, outputs); aot_impl (inputs, outputs,
    tactic) with a 4-tuple return annotation; impl (inputs, outputs, stream).
    """
    trt = SimpleNamespace(DataType=SimpleNamespace(FLOAT="FLOAT", HALF="HALF", BF16="BF16"))

    class TensorDesc(_FakeDesc):
        pass

    class Tensor:
        pass

    class KernelLaunchParams:
        grid_x = grid_y = grid_z = block_x = block_y = block_z = 1
        shared_mem = 0

    class SymExprs:
        pass

    class SymIntExprs(SymExprs):
        def __init__(self, values):
            self.values = list(values)

        @classmethod
        def from_tuple(cls, values):
            return cls(values)

    class SymInt32:
        def __init__(self, value):
            self.value = value

    class AutoTuneCombination:
        def __init__(self, io_types):
            self.io_types = [s.strip() for s in io_types.split(",")]

    registry = {}

    def check(kind, fn):
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        if kind == "register":
            annotations = [p.annotation for p in sig.parameters.values()]
            assert all(isinstance(a, type) and issubclass(a, TensorDesc) for a in annotations)
            assert sig.return_annotation is TensorDesc
            registry["inputs"] = names
            return
        expected = {"autotune": ["outputs"], "aot_impl": ["outputs", "tactic"], "impl": ["outputs", "stream"]}
        assert names == registry["inputs"] + expected[kind], (kind, names)
        if kind == "aot_impl":
            args = typing.get_args(sig.return_annotation)
            assert len(args) == 4 and args[2] is KernelLaunchParams and issubclass(args[3], SymExprs)

    def decorator(kind):
        def with_id(plugin_id):
            assert plugin_id == "inti::TokenInterpolate"

            def wrap(fn):
                check(kind, fn)
                registry[kind] = fn
                return fn

            return wrap

        return with_id

    trtp = SimpleNamespace(
        register=decorator("register"), autotune=decorator("autotune"),
        aot_impl=decorator("aot_impl"), impl=decorator("impl"),
        TensorDesc=TensorDesc, Tensor=Tensor, KernelLaunchParams=KernelLaunchParams, SymExprs=SymExprs,
        SymIntExprs=SymIntExprs, SymInt32=SymInt32, AutoTuneCombination=AutoTuneCombination,
        cdiv=_fake_cdiv,
    )
    return trt, trtp, registry


def test_plugin_definitions_follow_the_qdp_schema(monkeypatch, aot_compile):
    from inti_export.plugins import triton_aot
    from inti_export.plugins.triton_kernel import AOT_CONFIGS

    monkeypatch.setattr(triton_aot, "compile_aot", aot_compile)  # for sm_90, without a GPU
    trt, trtp, registry = _fake_tensorrt()
    tp._define_plugin(trt, trtp)
    assert set(registry) == {"inputs", "register", "autotune", "aot_impl", "impl"}

    d, k, lead = 32, 64, (2, 3, 197)
    descs = [
        trtp.TensorDesc((*lead, k), "HALF"), trtp.TensorDesc((*lead, d), "HALF"), trtp.TensorDesc((*lead, d), "HALF"),
        trtp.TensorDesc((d, k), "HALF"), trtp.TensorDesc((d,), "HALF"),
        trtp.TensorDesc((2, d), "HALF"), trtp.TensorDesc((2,), "HALF"),
    ]
    out = registry["register"](*descs)
    assert [e.constant_value() for e in out.shape_expr] == [*lead, d] and out.dtype == "HALF"
    with pytest.raises(ValueError, match="input ranks"):
        registry["register"](*descs[:3], descs[4], *descs[4:])  # w1 of rank 1

    combos = registry["autotune"](*descs, (out,))
    assert all(len(c.io_types) == 8 for c in combos)
    assert combos[0].io_types == ["FP32|FP16|BF16"] * 8

    name, ptx, launch, extra = registry["aot_impl"](*descs, (out,), 0)
    m = math.prod(lead)
    block_m = AOT_CONFIGS[torch.float16].block_m
    assert launch.grid_x.constant_value() == -(-m // block_m)
    assert launch.block_x == 32 * AOT_CONFIGS[torch.float16].num_warps
    assert [v.value.constant_value() for v in extra.values] == [m, d, k]  # the kernel's M, D, K, in order
    assert name == b"_token_interpolate_kernel" and b".entry _token_interpolate_kernel" in ptx
    assert _vector_loads(ptx.decode()) > 0  # D=32, 4D'=64 are build-time multiples of 16: the aligned kernel

    # a width that is not a multiple of 16 gets the plain kernel
    d = 40
    shapes = [(*lead, k), (*lead, d), (*lead, d), (d, k), (d,), (2, d), (2,)]
    odd = [trtp.TensorDesc(shape, "HALF") for shape in shapes]
    _, ptx, _, extra = registry["aot_impl"](*odd, (registry["register"](*odd),), 0)
    assert _vector_loads(ptx.decode()) == 0 and [v.value.constant_value() for v in extra.values] == [m, d, k]

    # a dynamic batch: M and the grid are known at run time only; D, 4D' still select the aligned kernel
    d = 32
    shapes = [(None, 3, 197, k), (None, 3, 197, d), (None, 3, 197, d), (d, k), (d,), (2, d), (2,)]
    dynamic = [trtp.TensorDesc(shape, "HALF") for shape in shapes]
    _, ptx, launch, extra = registry["aot_impl"](*dynamic, (registry["register"](*dynamic),), 0)
    assert _vector_loads(ptx.decode()) > 0 and not launch.grid_x.is_constant
    assert not extra.values[0].value.is_constant and [v.value.constant_value() for v in extra.values[1:]] == [d, k]
