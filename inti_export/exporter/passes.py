"""Graph passes on the exported ONNX (onnx_ir): every edit after `torch.onnx.export` lives here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import onnx_ir as ir

from inti_export.errors import ExportError
from inti_export.exporter import functions

_NAMESPACE = "namespace"
_BLOCK_RE = re.compile(r"visual\.transformer\.resblocks\.(\d+):")
_INTI_RE = re.compile(r"/inti\.(\d+):")


def inti_nodes(model: ir.Model) -> list[ir.Node]:
    """The `inti.TokenInterpolate` nodes, in graph order."""
    return [n for n in model.graph if n.domain == functions.DOMAIN and n.op_type == functions.OP_TYPE]


def attach_inti_function(model: ir.Model) -> None:
    """Ship the definition of `inti.TokenInterpolate` as a model-local function (at the model's opset)."""
    if not inti_nodes(model):
        return
    proto = functions.function_proto()
    del proto.opset_import[:]
    proto.opset_import.add(domain="", version=model.opset_imports[""])
    fn = ir.serde.deserialize_function(proto)
    model.functions[fn.identifier()] = fn
    model.opset_imports[functions.DOMAIN] = functions.VERSION


def name_boundaries(model: ir.Model) -> list[dict[str, str]]:
    """Give stable names to the InTI nodes and the outputs of each block and InTI layer.

    Returns [{"name": "inti.<i>" or "block.<i>", "value": value name}] in graph order, for debug outputs.
    Relies on the exporter's `namespace` node metadata (the nn.Module path of each node).
    """
    last_of: dict[str, ir.Node] = {}
    for node in model.graph:
        ns = node.metadata_props.get(_NAMESPACE, "")
        if node.domain == functions.DOMAIN and (m := _INTI_RE.search(ns)):
            last_of[f"inti.{m.group(1)}"] = node
        elif m := _BLOCK_RE.search(ns):
            last_of[f"block.{m.group(1)}"] = node
    names = {}
    for key, node in last_of.items():
        kind, idx = key.split(".")
        if kind == "inti":
            node.name = f"inti_before_block_{idx}"
        value = node.outputs[0]
        if not value.is_graph_output():
            value.name = f"{kind}_{idx}_out"
        names[key] = value.name
    order = {n: i for i, n in enumerate(model.graph)}
    keys = sorted(names, key=lambda k: order[last_of[k]])
    return [{"name": k, "value": names[k]} for k in keys]


def strip_node_metadata(model: ir.Model) -> None:
    """Drop the exporter's per-node metadata (source paths, stack traces): smaller, reproducible files."""
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        node.metadata_props.clear()


def set_metadata(model: ir.Model, props: dict[str, object]) -> None:
    """Model-level `metadata_props`; non-string values are stored as JSON."""
    for key, value in props.items():
        model.metadata_props[key] = value if isinstance(value, str) else json.dumps(value)


def add_debug_outputs(model: ir.Model, value_names: Iterable[str]) -> list[str]:
    """Make the named intermediate values graph outputs (for the parity tool's debug copy)."""
    wanted = set(value_names)
    found = {}
    for node in model.graph:
        for out in node.outputs:
            if out.name in wanted:
                found[out.name] = out
    missing = sorted(wanted - set(found))
    if missing:
        raise ExportError(
            f"values {missing} named in the model's metadata are not in its graph: re-export it with `inti-export onnx`"
        )
    added = []
    for name in value_names:
        if not found[name].is_graph_output():
            model.graph.outputs.append(found[name])
            added.append(name)
    return added
