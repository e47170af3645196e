"""The TensorRT plugin `inti::TokenInterpolate`: availability, manifest info, ONNX marking, the AOT
compile (on CPU, for a GPU target), the QDP definitions against a stand-in `tensorrt.plugin`, and
engines built and run with full TensorRT (skipped without it or without a GPU)."""

from __future__ import annotations

import importlib
import inspect
import math
import re
import sys
import typing
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from packaging.requirements import Requirement
from packaging.version import Version

from inti_export.errors import RuntimeUnavailableError
from inti_export.plugins import trt_plugin as tp
from inti_export.plugins.reference import token_interpolate_reference

INPUT_NAMES = ["h", "a", "b", "w1", "b1", "w2", "b2"]
ROOT = Path(__file__).resolve().parents[2]


# ---- availability ---------------------------------------------------------------------------------


def test_tensorrt_rtx_is_reported_unsupported():
    assert tp.plugin_available("tensorrt_rtx") == (False, "TensorRT-RTX does not support user plugins")


def test_tensorrt_rtx_module_is_reported_unsupported():
    trt_rtx = pytest.importorskip("tensorrt_rtx")
    ok, reason = tp.plugin_available(trt_rtx)
    assert not ok and reason == tp.RTX_REASON
    with pytest.raises(RuntimeUnavailableError, match="TensorRT-RTX does not support user plugins"):
        tp.register_plugin(trt_rtx)


def test_missing_tensorrt_is_reported():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert tp.plugin_available() == (False, "tensorrt not installed")
        with pytest.raises(RuntimeUnavailableError, match="tensorrt not installed"):
            tp.register_plugin()
    else:
        pytest.skip("tensorrt is installed here")


def test_unknown_module_is_an_error():
    with pytest.raises(RuntimeUnavailableError, match="'onnxruntime'"):
        tp.plugin_available("onnxruntime")


def _pinned_tensorrt_minimum() -> tuple[int, ...]:
    """(major, minor) of the `tensorrt>=` requirement in pyproject.toml's `trt` extra."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["trt"]]
    (spec,) = [s for r in requirements if r.name == "tensorrt" for s in r.specifier if s.operator == ">="]
    return Version(spec.version).release[:2]


def test_tensorrt_pin_is_the_plugins_minimum():
    """`tensorrt.plugin.aot_impl` arrived in TensorRT 10.9 (issue 28 item 8): pin and refusal say so."""
    assert tp.MIN_TENSORRT_VERSION == (10, 9)
    assert _pinned_tensorrt_minimum() == tp.MIN_TENSORRT_VERSION


def _fake_tensorrt_install(monkeypatch, version: str, aot_impl: bool) -> None:
    """A `tensorrt` of `version` in sys.modules whose `tensorrt.plugin` has aot_impl or not."""
    trt, trtp = ModuleType("tensorrt"), ModuleType("tensorrt.plugin")
    trt.__spec__, trtp.__spec__ = ModuleSpec("tensorrt", None), ModuleSpec("tensorrt.plugin", None)
    trt.__version__, trt.plugin = version, trtp
    if aot_impl:
        trtp.aot_impl = lambda plugin_id: None
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)


@pytest.mark.parametrize("aot_impl", [False, True], ids=["without-aot-impl", "with-aot-impl"])
def test_tensorrt_older_than_the_pin_is_refused(monkeypatch, aot_impl):
    _fake_tensorrt_install(monkeypatch, "10.8.0.43", aot_impl)
    ok, reason = tp.plugin_available()
    pinned = ".".join(map(str, _pinned_tensorrt_minimum()))
    assert not ok and reason.startswith("tensorrt 10.8.0.43 ") and reason.endswith(f"(needs TensorRT >= {pinned})")


def test_tensorrt_at_the_pin_is_accepted(monkeypatch):
    pytest.importorskip("triton")
    _fake_tensorrt_install(monkeypatch, "10.9.0.34", aot_impl=True)
    assert tp.plugin_available() == (True, "tensorrt 10.9.0.34")


# ---- manifest info and ONNX marking ---------------------------------------------------------------


def test_plugin_info_hashes_plugin_and_kernel_sources():
    info = tp.plugin_info()
    assert (info.name, info.namespace, info.version) == ("TokenInterpolate", "inti", "1")
    assert re.fullmatch(r"[0-9a-f]{64}", info.sha256)
    assert info == tp.plugin_info()  # deterministic
    assert set(info.to_dict()) == {"name", "namespace", "version", "sha256", "files"}
    assert info.files == ("inti_export/plugins/trt_plugin.py", "inti_export/plugins/triton_kernel.py")


def _token_interpolate_model(dtype=np.float32, d=32, d_ctx=16, seed=0, decoy_function=True) -> onnx.ModelProto:
    """One `inti.TokenInterpolate` node on dynamic-batch inputs (batch, 5, .), weights as initializers.

    With `decoy_function`, the model also carries a local function for the node that returns `a`
    unchanged, so a build that inlines the function instead of using the plugin shows in the numbers.
    """
    g = np.random.default_rng(seed)
    k = 4 * d_ctx
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    weights = {
        "w1": g.standard_normal((d, k)) / math.sqrt(k),
        "b1": 0.1 * g.standard_normal(d),
        "w2": 2.0 * g.standard_normal((2, d)) / math.sqrt(d),
        "b2": 0.1 * g.standard_normal(2),
    }
    node = helper.make_node("TokenInterpolate", INPUT_NAMES, ["y"], domain="inti", name="token_interpolate_0")
    graph = helper.make_graph(
        [node],
        "token_interpolate",
        [helper.make_tensor_value_info(n, elem, ["batch", 5, w]) for n, w in (("h", k), ("a", d), ("b", d))],
        [helper.make_tensor_value_info("y", elem, ["batch", 5, d])],
        initializer=[numpy_helper.from_array(v.astype(dtype), n) for n, v in weights.items()],
    )
    functions = []
    if decoy_function:
        functions.append(
            helper.make_function(
                "inti", "TokenInterpolate", INPUT_NAMES, ["y"],
                [helper.make_node("Identity", ["a"], ["y"])],
                opset_imports=[helper.make_opsetid("", 17)],
            )
        )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("inti", 1)],
        functions=functions,
    )
    model.ir_version = 8
    return model


def test_mark_plugin_nodes_adds_namespace_and_aot():
    model = _token_interpolate_model()
    assert tp.mark_plugin_nodes(model) == 1
    attrs = {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    assert attrs == {"plugin_namespace": b"inti", "aot": 1}
    assert tp.mark_plugin_nodes(model, aot=False) == 1  # replaces, does not duplicate
    attrs = {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    assert attrs == {"plugin_namespace": b"inti", "aot": 0}


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
    from inti_export.plugins import triton_kernel as tk

    kernel = aot_compile(act, weight)
    entry = re.search(r"\.entry\s+(\w+)\s*\((.*?)\)", kernel.ptx, re.S)
    assert entry and entry.group(1) == kernel.name
    # 7 input pointers, M, D, K, the output pointer; then Triton 3.8's two hidden scratch pointers,
    # which TensorRT pads with null (allowed because the kernel needs no scratch: compile_aot checks
    # it; benchmarks/gpu_suite.sh confirms it on a GPU)
    assert _entry_params(kernel.ptx) == 13
    assert 0 < kernel.shared_mem <= tk.MAX_STATIC_SHARED_BYTES
    assert kernel.num_warps == tk.AOT_CONFIGS[act].num_warps
    assert kernel.block_m == tk.AOT_CONFIGS[act].block_m
    assert kernel.num_stages == tk.AOT_CONFIGS[act].num_stages  # sm_90 fits every pair at 3 stages


@pytest.mark.parametrize(
    "arch,act", [(100, torch.float16), (103, torch.bfloat16), (110, torch.float16)], ids=["sm100", "sm103", "sm110"]
)
def test_compile_aot_fits_shared_memory_with_fp32_weights(aot_compile, arch, act):
    """fp16/bf16 activations with fp32 weights need 57,360 bytes at 3 stages on sm_100/103/110 (issue 18)."""
    from inti_export.plugins import triton_kernel as tk

    kernel = aot_compile(act, torch.float32, arch=arch)
    assert kernel.shared_mem <= tk.MAX_STATIC_SHARED_BYTES
    assert kernel.num_stages < tk.AOT_CONFIGS[act].num_stages  # the pipeline was shortened to fit
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
    from inti_export.plugins import triton_kernel as tk

    monkeypatch.setattr(tk, "compile_aot", aot_compile)  # for sm_90, without a GPU
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
    block_m = tk.AOT_CONFIGS[torch.float16].block_m
    assert launch.grid_x.constant_value() == -(-m // block_m)
    assert launch.block_x == 32 * tk.AOT_CONFIGS[torch.float16].num_warps
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


# ---- full TensorRT, on a GPU ----------------------------------------------------------------------


def _require_trt():
    ok, reason = tp.plugin_available()
    if not ok:
        pytest.skip(reason)
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    import tensorrt

    return tensorrt


def _build_and_run(trt, model: onnx.ModelProto, feeds: dict, max_batch: int = 8):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    plugin_layers = [network.get_layer(i) for i in range(network.num_layers)
                     if network.get_layer(i).type == trt.LayerType.PLUGIN_V3]
    assert len(plugin_layers) == 1, "the node was not imported as the plugin"

    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, t in feeds.items():
        rest = tuple(t.shape[1:])
        profile.set_shape(name, (1, *rest), tuple(t.shape), (max_batch, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "engine build failed"
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)

    context = engine.create_execution_context()
    for name, t in feeds.items():
        context.set_input_shape(name, tuple(t.shape))
        context.set_tensor_address(name, t.data_ptr())
    y = torch.empty_like(feeds["a"])
    context.set_tensor_address("y", y.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    return y


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("aot", [True, False], ids=["aot", "python-impl"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
def test_engine_with_plugin_matches_reference(check_close, aot, dtype):
    trt = _require_trt()
    info = tp.register_plugin(trt)
    assert info == tp.plugin_info()
    model = _token_interpolate_model(dtype)
    assert tp.mark_plugin_nodes(model, aot=aot) == 1

    torch_dtype = {np.float32: torch.float32, np.float16: torch.float16}[dtype]
    g = torch.Generator().manual_seed(1)
    feeds = {
        "h": torch.randn(3, 5, 64, generator=g),
        "a": torch.randn(3, 5, 32, generator=g),
        "b": torch.randn(3, 5, 32, generator=g),
    }
    feeds = {n: t.to("cuda", torch_dtype) for n, t in feeds.items()}
    y = _build_and_run(trt, model, feeds)

    weights = [torch.from_numpy(numpy_helper.to_array(w).copy()).to("cuda") for w in model.graph.initializer]
    ref = token_interpolate_reference(feeds["h"], feeds["a"], feeds["b"], *weights)
    check_close(y, ref, torch_dtype)


@pytest.mark.trt
@pytest.mark.gpu
def test_build_engine_with_plugin_matches_the_model(tiny_onnx, tiny_model, tiny_clips, tmp_path):
    """The path users take (`inti-export trt --plugin`): build_engine with plugin=True, then TrtRunner,
    against the PyTorch model on real clips (issue 28: the raw-API test above never ran build_engine)."""
    _require_trt()
    from inti_export.runtime.trt import BuildConfig, TrtRunner, build_engine

    engine = tmp_path / "plugin.engine"
    manifest = build_engine(tiny_onnx.onnx_path, engine, BuildConfig(runtime="tensorrt", plugin=True, batch=(1, 2, 4)))
    assert [p["aot"] for p in manifest.plugins] == [True]
    video = tiny_clips.clips[:4]
    with torch.no_grad():
        want = tiny_model(torch.from_numpy(video)).numpy()
    with TrtRunner(engine) as runner:
        got = runner.infer({"video": video})["embedding"]
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max(), rtol=0)
