"""TensorRT plugin `inti::TokenInterpolate` for full TensorRT (10.9 or newer) via `tensorrt.plugin`.

A quickly deployable plugin (QDP), after NVIDIA's `samples/python/quickly_deployable_plugins`:

- `register`: inputs (h, a, b, w1, b1, w2, b2), one output shaped and typed like `a`;
- `autotune`: the type combinations the kernel takes (all FP32, all FP16, all BF16, or FP16/BF16
  activations with FP32 weights), LINEAR layout;
- `aot_impl`: the Triton kernel of `triton_kernel.py`, compiled to PTX at build time by
  `triton_aot.py`, with a grid and int32 arguments (M, D, 4D') as symbolic expressions of the input
  shapes, so the engine holds the kernel and runs without Python (trtexec, C++);
- `impl`: the same kernel launched through torch on TensorRT's stream, for ONNX nodes that do not
  ask for the AOT implementation.

TensorRT's ONNX parser maps a node to the plugin when the node's op type is `TokenInterpolate` and it
carries the attribute `plugin_namespace="inti"` (`aot=1` selects the AOT implementation); see
`mark_plugin_nodes`. Without that attribute the parser inlines the node's model-local ONNX function.
TensorRT for RTX (`tensorrt_rtx`) refuses user plugins: engines for it use the ONNX function.

Nothing here imports tensorrt, triton or torch at module level.
"""

# No `from __future__ import annotations`: tensorrt.plugin inspects the annotations of the decorated
# functions as classes (TensorDesc, Tuple[TensorDesc], ...), so they must be evaluated objects, and
# they keep the `typing` spellings of NVIDIA's samples, which its validation was written against.
# ruff: noqa: UP006, UP007, UP035

import functools
import hashlib
import importlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

from inti_export.errors import RuntimeUnavailableError

logger = logging.getLogger(__name__)

PLUGIN_NAMESPACE = "inti"
PLUGIN_NAME = "TokenInterpolate"
PLUGIN_VERSION = "1"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"

# `tensorrt.plugin.aot_impl` arrived in TensorRT 10.9; pyproject.toml's `trt` extra pins the same.
MIN_TENSORRT_VERSION = (10, 9)
RTX_REASON = "TensorRT-RTX does not support user plugins"
NOT_INSTALLED_REASON = "tensorrt not installed"

# Attributes that make TensorRT's ONNX parser import an `inti.TokenInterpolate` node as this plugin.
ONNX_PLUGIN_ATTRIBUTES = {"plugin_namespace": PLUGIN_NAMESPACE, "aot": 1}

_SOURCE_FILES = ("trt_plugin.py", "triton_kernel.py", "triton_aot.py")  # what the engine's plugin code is made of
_KNOWN_MODULES = ("tensorrt", "tensorrt_rtx")


@dataclass(frozen=True)
class PluginInfo:
    """What an engine manifest records about the plugin it was built with."""

    name: str
    namespace: str
    version: str
    sha256: str  # of the plugin and kernel sources, in `files` order
    files: Tuple[str, ...]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "version": self.version,
            "sha256": self.sha256,
            "files": list(self.files),
        }


def plugin_info() -> PluginInfo:
    """Name, version and content hash of the plugin, without importing TensorRT."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in _SOURCE_FILES:
        data = (here / name).read_bytes()
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return PluginInfo(
        name=PLUGIN_NAME,
        namespace=PLUGIN_NAMESPACE,
        version=PLUGIN_VERSION,
        sha256=digest.hexdigest(),
        files=tuple(f"inti_export/plugins/{name}" for name in _SOURCE_FILES),
    )


def _module_name(trt_module: Any) -> str:
    """'tensorrt' or 'tensorrt_rtx' from a module, a module name, or None (full TensorRT)."""
    if trt_module is None:
        return "tensorrt"
    name = trt_module if isinstance(trt_module, str) else getattr(trt_module, "__name__", repr(trt_module))
    root = name.split(".")[0]
    if root not in _KNOWN_MODULES:
        raise RuntimeUnavailableError(
            f"unknown TensorRT module {name!r}; expected one of {', '.join(_KNOWN_MODULES)}"
        )
    return root


def plugin_available(trt_module: Any = None) -> Tuple[bool, str]:
    """Whether `inti::TokenInterpolate` can be registered with `trt_module`, and why not.

    `trt_module` is the tensorrt module (or its name); None means full TensorRT. Never raises for a
    missing package: the reason says what is missing.
    """
    root = _module_name(trt_module)
    if root == "tensorrt_rtx":
        return False, RTX_REASON
    if importlib.util.find_spec("tensorrt") is None:
        return False, NOT_INSTALLED_REASON
    try:
        trt = importlib.import_module("tensorrt")
    except (ImportError, OSError) as e:
        return False, f"tensorrt does not import: {e}"
    version = getattr(trt, "__version__", "?")
    needs = f"needs TensorRT >= {'.'.join(map(str, MIN_TENSORRT_VERSION))}"
    if _version_tuple(version) < MIN_TENSORRT_VERSION:
        return False, f"tensorrt {version} is too old for the plugin ({needs})"
    try:
        trtp = importlib.import_module("tensorrt.plugin")
    except (ImportError, OSError):
        return False, f"tensorrt {version} has no tensorrt.plugin module ({needs})"
    if not hasattr(trtp, "aot_impl"):
        return False, f"tensorrt {version} has no tensorrt.plugin.aot_impl ({needs})"
    if importlib.util.find_spec("triton") is None:
        return False, "triton not installed (it compiles the plugin's kernel)"
    return True, f"tensorrt {version}"


def _version_tuple(version: str) -> Tuple[int, ...]:
    """"10.9.0.34" -> (10, 9); a version that does not parse as major.minor sorts after every other."""
    try:
        major, minor = str(version).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (10**9,)


_REGISTERED: Dict[str, PluginInfo] = {}


def register_plugin(trt_module: Any = None) -> PluginInfo:
    """Register `inti::TokenInterpolate` with TensorRT's plugin registry (once per process).

    Call before parsing an ONNX model whose nodes `mark_plugin_nodes` marked. Returns the
    `PluginInfo` for the engine manifest. Raises `RuntimeUnavailableError` for tensorrt_rtx or when
    full TensorRT (or triton) is missing.
    """
    root = _module_name(trt_module)
    ok, reason = plugin_available(root)
    if not ok:
        raise RuntimeUnavailableError(f"cannot register the TensorRT plugin {PLUGIN_ID}: {reason}")
    if root not in _REGISTERED:
        trt = importlib.import_module(root)
        trtp = importlib.import_module(f"{root}.plugin")
        _define_plugin(trt, trtp)
        _REGISTERED[root] = plugin_info()
        logger.info("registered TensorRT plugin %s (sha256 %s)", PLUGIN_ID, _REGISTERED[root].sha256[:12])
    return _REGISTERED[root]


def mark_plugin_nodes(model: Any, *, aot: bool = True) -> int:
    """Mark every `inti.TokenInterpolate` node of an onnx.ModelProto for TensorRT's plugin importer.

    Adds `plugin_namespace="inti"` and `aot` (1: the PTX baked into the engine; 0: the Python
    `impl`, which needs this module at run time). Returns how many nodes were marked, in place.
    """
    import onnx

    attributes = dict(ONNX_PLUGIN_ATTRIBUTES, aot=int(aot))
    graphs = [model.graph]
    count = 0
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            for attr in node.attribute:  # subgraphs (If/Loop bodies)
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
            if node.op_type != PLUGIN_NAME or node.domain != PLUGIN_NAMESPACE:
                continue
            kept = [a for a in node.attribute if a.name not in attributes]
            del node.attribute[:]
            node.attribute.extend(kept)
            node.attribute.extend(onnx.helper.make_attribute(k, v) for k, v in attributes.items())
            count += 1
    return count


# ---- the plugin definition (runs once, with tensorrt imported) ------------------------------------


class _CudaArray:
    """A `__cuda_array_interface__` for a device buffer, for dtypes TensorRT's Tensor will not export."""

    def __init__(self, ptr: int, shape: Tuple[int, ...], typestr: str, strides: Tuple[int, ...]):
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": typestr,
            "data": (ptr, False),
            "strides": strides,
            "version": 3,
        }


def _constant(expr: Any) -> Any:
    """The value of a build-time constant shape expression (tensorrt.plugin's ShapeExpr), else None.

    In tensorrt/plugin/_tensor.py `is_fake` and `is_constant` are properties and `constant_value()` a
    method (`is_constant` raises for a fake expression); an attribute holding the value is read as is.
    """
    if isinstance(expr, int):
        return expr
    if getattr(expr, "is_fake", False) or not getattr(expr, "is_constant", False):
        return None
    value = expr.constant_value
    return int(value() if callable(value) else value)


def _define_plugin(trt: Any, trtp: Any) -> None:
    import torch

    from inti_export.plugins import triton_aot as aot
    from inti_export.plugins import triton_kernel as tk

    to_torch = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.BF16: torch.bfloat16,
    }

    def torch_dtype(dtype: Any, name: str) -> "torch.dtype":
        if dtype not in to_torch:
            raise ValueError(f"{PLUGIN_ID}: {name} has type {dtype}; supported: FLOAT, HALF, BF16")
        return to_torch[dtype]

    def as_torch(t: Any) -> "torch.Tensor":
        if t.dtype == trt.DataType.BF16:  # Tensor.__cuda_array_interface__ refuses BF16: view as int16
            strides = tuple(2 * s for s in t.strides)
            shim = _CudaArray(t.data_ptr, tuple(t.shape), "<i2", strides)
            return torch.as_tensor(shim, device="cuda").view(torch.bfloat16)
        return torch.as_tensor(t, device="cuda")

    @functools.cache
    def compiled(act: "torch.dtype", weight: "torch.dtype", device: int, aligned: bool) -> "aot.CompiledKernel":
        return aot.compile_aot(act, weight, ptx_version=aot.driver_ptx_version(), aligned=aligned)

    @trtp.register(PLUGIN_ID)
    def token_interpolate_desc(
        h: trtp.TensorDesc,
        a: trtp.TensorDesc,
        b: trtp.TensorDesc,
        w1: trtp.TensorDesc,
        b1: trtp.TensorDesc,
        w2: trtp.TensorDesc,
        b2: trtp.TensorDesc,
    ) -> trtp.TensorDesc:
        ranks = {"h": h.ndim, "a": a.ndim, "b": b.ndim, "w1": w1.ndim, "b1": b1.ndim, "w2": w2.ndim, "b2": b2.ndim}
        expected = {"h": a.ndim, "a": a.ndim, "b": a.ndim, "w1": 2, "b1": 1, "w2": 2, "b2": 1}
        if a.ndim < 2 or ranks != expected:
            raise ValueError(f"{PLUGIN_ID}: input ranks {ranks}, expected {expected} with rank(a) >= 2")
        return a.like()  # y: (..., D), the type of a

    @trtp.autotune(PLUGIN_ID)
    def token_interpolate_autotune(
        h: trtp.TensorDesc,
        a: trtp.TensorDesc,
        b: trtp.TensorDesc,
        w1: trtp.TensorDesc,
        b1: trtp.TensorDesc,
        w2: trtp.TensorDesc,
        b2: trtp.TensorDesc,
        outputs: Tuple[trtp.TensorDesc],
    ) -> List[trtp.AutoTuneCombination]:
        # I/O positions: h, a, b, w1, b1, w2, b2, y. '|' ties the choice across positions.
        act, same = "FP16|BF16", "FP32|FP16|BF16"
        return [
            trtp.AutoTuneCombination(", ".join([same] * 8)),  # one type everywhere
            trtp.AutoTuneCombination(", ".join([act] * 3 + ["FP32"] * 4 + [act])),  # fp32 weights
        ]

    @trtp.aot_impl(PLUGIN_ID)
    def token_interpolate_aot_impl(
        h: trtp.TensorDesc,
        a: trtp.TensorDesc,
        b: trtp.TensorDesc,
        w1: trtp.TensorDesc,
        b1: trtp.TensorDesc,
        w2: trtp.TensorDesc,
        b2: trtp.TensorDesc,
        outputs: Tuple[trtp.TensorDesc],
        tactic: int,
    ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
        act, weight = torch_dtype(a.dtype, "a"), torch_dtype(w1.dtype, "w1")
        dims = a.shape_expr
        m = dims[0]
        for e in list(dims)[1:-1]:
            m = m * e  # tokens: product of the leading dims, symbolic
        d, k = dims[len(dims) - 1], h.shape_expr[h.ndim - 1]
        # D and 4D' are fixed by the weights at build time: multiples of 16 get the vectorised kernel
        aligned = all(v is not None and v % 16 == 0 for v in (_constant(d), _constant(k)))
        device = torch.cuda.current_device() if torch.cuda.is_available() else -1
        kernel = compiled(act, weight, device, aligned)

        launch = trtp.KernelLaunchParams()
        launch.grid_x = trtp.cdiv(m, kernel.block_m)
        launch.block_x = kernel.num_warps * 32
        launch.shared_mem = kernel.shared_mem
        # the kernel's int32 arguments, between its input and output pointers: M, D, K
        extra_args = trtp.SymIntExprs.from_tuple([trtp.SymInt32(m), trtp.SymInt32(d), trtp.SymInt32(k)])
        return kernel.name.encode(), kernel.ptx.encode(), launch, extra_args

    @trtp.impl(PLUGIN_ID)
    def token_interpolate_impl(
        h: trtp.Tensor,
        a: trtp.Tensor,
        b: trtp.Tensor,
        w1: trtp.Tensor,
        b1: trtp.Tensor,
        w2: trtp.Tensor,
        b2: trtp.Tensor,
        outputs: Tuple[trtp.Tensor],
        stream: int,
    ) -> None:
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            inputs = [as_torch(t) for t in (h, a, b, w1, b1, w2, b2)]
            y = as_torch(outputs[0])
            # a fixed configuration: the Triton autotuner's timing runs have no place inside an enqueue
            config = tk.AOT_CONFIGS[inputs[1].dtype]
            tk.token_interpolate_triton(*inputs, out=y, config=config)
