"""What the ONNX parser made of our graph: layers, their ONNX nodes and functions, tensor dtypes.

    network_layers(network)          -> [{name, type, onnx_node, functions, output_dtypes}]
    network_summary(layers, model)   -> counts by layer type and dtype, plugin layers, inlined functions
    tensor_info(tensor)              -> {name, dtype, shape} for the manifest's inputs and outputs

The manifest keeps both, so CI can check inlining and precision without deserialising an engine.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from inti_export.vocab import OP_DOMAIN, OP_TYPE

PLUGIN_LAYER_TYPES = {"PLUGIN", "PLUGIN_V2", "PLUGIN_V3"}
# TensorRT DataType name -> the dtype name the manifest records (NumPy's, or ml_dtypes' for FP8/BF16)
MANIFEST_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
    "FP8": "float8_e4m3",
}
_METADATA_RE = re.compile(r"^\[ONNX Layer: (?P<body>.*)\]$")
_FRAME_RE = re.compile(r"^(?P<node>.*) \((?P<function>[^()]*)\)$")


def enum_name(value) -> str:
    """`DataType.HALF` -> "HALF"."""
    return getattr(value, "name", str(value).rsplit(".", 1)[-1])


def function_nodes(model) -> list:
    """The graph's `inti.TokenInterpolate` nodes."""
    return [n for n in model.graph.node if n.op_type == OP_TYPE and n.domain == OP_DOMAIN]


def parse_layer_metadata(metadata: str) -> tuple[str | None, list[dict[str, str]]]:
    """'[ONNX Layer: n | inti_step_0 (TokenInterpolate)]' -> ('n', [{node: inti_step_0, function: ...}])."""
    m = _METADATA_RE.match(metadata or "")
    if not m:
        return None, []
    node, *frames = m.group("body").split(" | ")
    stack = []
    for frame in frames:
        fm = _FRAME_RE.match(frame)
        stack.append({"node": fm["node"], "function": fm["function"]} if fm else {"node": frame, "function": ""})
    return node, stack


def network_layers(network) -> list[dict[str, Any]]:
    """Layers as the parser produced them: name, type, ONNX node, function stack, output dtypes."""
    layers = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        node, stack = parse_layer_metadata(getattr(layer, "metadata", "") or "")
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        layers.append(
            {
                "name": layer.name,
                "type": enum_name(layer.type),
                "onnx_node": node,
                "functions": stack,
                "output_dtypes": [enum_name(t.dtype) if t is not None else None for t in outputs],
            }
        )
    return layers


def network_summary(layers: list[dict[str, Any]], model) -> dict[str, Any]:
    """Layer and dtype counts, plugin layers, and per ONNX function: its call sites, layers and dtypes."""
    functions: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for frame in layer["functions"]:
            entry = functions.setdefault(frame["function"], {"calls": [], "layers": 0, "output_dtypes": Counter()})
            if frame["node"] not in entry["calls"]:
                entry["calls"].append(frame["node"])
            entry["layers"] += 1
            entry["output_dtypes"].update(d for d in layer["output_dtypes"] if d)
    for entry in functions.values():
        entry["output_dtypes"] = dict(entry["output_dtypes"])
    return {
        "num_layers": len(layers),
        "layer_types": dict(Counter(layer["type"] for layer in layers)),
        "output_dtypes": dict(Counter(d for layer in layers for d in layer["output_dtypes"] if d)),
        "plugin_layers": [layer["name"] for layer in layers if layer["type"] in PLUGIN_LAYER_TYPES],
        "onnx_function_nodes": [n.name for n in function_nodes(model)],
        "functions": functions,
    }


def tensor_info(tensor) -> dict[str, Any]:
    """{name, dtype, shape} of a network input or output; None for a dynamic axis."""
    dtype = enum_name(tensor.dtype)
    return {
        "name": tensor.name,
        "dtype": MANIFEST_DTYPES.get(dtype, dtype.lower()),
        "shape": [None if int(d) < 0 else int(d) for d in tensor.shape],
    }
