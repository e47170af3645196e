"""ONNX -> a strongly typed TensorRT network: reading the file, its precision, the parser and its errors.

    read_onnx(path)                       -> onnx.ModelProto (external weights not loaded)
    onnx_precision(metadata)              -> "fp32", "fp16", ... from `inti.precision`
    parse_network(trt, logger, ...)       -> (builder, network), the ONNX parsed into it

The `inti.TokenInterpolate` node is inlined from its model-local ONNX function unless a plugin
module is given (full TensorRT only): then `prepare_plugin_model` marks the node for the plugin.
"""

from __future__ import annotations

import os
from pathlib import Path

from inti_export.errors import EngineError, one_line
from inti_export.runtime.trt.loader import create, logged_errors, runtime_label
from inti_export.vocab import META_PRECISION, OP_DOMAIN, OP_TYPE, Precision, values

PRECISIONS = values(Precision)


def read_onnx(onnx_path: str | os.PathLike):
    """The ModelProto (external weights not loaded); one-line EngineError if it cannot be read."""
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise EngineError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise EngineError(f"cannot read ONNX {path} ({one_line(e)}): export it again") from e


def onnx_precision(metadata: dict[str, str], source: str = "ONNX") -> str:
    """The `inti.precision` of raw ONNX metadata ("fp32" when absent); EngineError for an unknown one."""
    precision = metadata.get(META_PRECISION, Precision.fp32.value)
    if precision not in PRECISIONS:
        raise EngineError(f"{source} has {META_PRECISION}={precision!r}; expected one of {', '.join(PRECISIONS)}")
    return precision


def network_flags(trt) -> int:
    """Creation flags of a strongly typed network."""
    # TensorRT 11 drops weak typing; where the flag still exists, ask for it explicitly.
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def parse_network(trt, logger, label: str, onnx_path: Path, model, plugin_module):
    """A builder and the network `model` (read from `onnx_path`) parses into; EngineError naming each parser error."""
    builder = create(trt.Builder, logger, f"could not create a {label} builder", trt)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    parse(trt, parser, onnx_path, model, plugin_module, logger)
    return builder, network


def prepare_plugin_model(model, plugin_module, aot: bool = True) -> int:
    """Mark the `inti.TokenInterpolate` nodes for the plugin and drop their model-local function.

    `plugin_namespace` on the node selects our plugin (`aot`: its compiled kernel, as the manifest
    records); without the function, no parser (however it orders plugins and functions) can inline
    it instead. Returns how many nodes were marked.
    """
    marked = plugin_module.mark_plugin_nodes(model, aot=aot)
    kept = [f for f in model.functions if not (f.domain == OP_DOMAIN and f.name == OP_TYPE)]
    del model.functions[:]
    model.functions.extend(kept)
    return marked


def parse(trt, parser, onnx_path: Path, model, plugin_module, logger) -> None:
    """Parse `model` (the file itself without a plugin module); EngineError with one line per parser error."""
    if plugin_module is not None:
        prepare_plugin_model(model, plugin_module)
        ok = parser.parse(model.SerializeToString(), str(onnx_path))
    else:
        ok = parser.parse_from_file(str(onnx_path))
    if ok:
        return
    lines = [parser_error_line(parser.get_error(i)) for i in range(parser.num_errors)] or [logged_errors(logger)]
    raise EngineError(
        f"{runtime_label(trt)} could not parse {onnx_path} ({len(lines)} errors):\n  " + "\n  ".join(lines)
    )


def parser_error_line(err) -> str:
    """One parser error: node index, name, operator, function stack, code and description."""

    def get(name, default=""):
        try:
            return getattr(err, name)()
        except Exception:  # noqa: BLE001 - older bindings lack some accessors
            return default

    where = f"node {get('node', '?')}"
    if get("node_name"):
        where += f" {get('node_name')!r}"
    if get("node_operator"):
        where += f" ({get('node_operator')})"
    stack = get("local_function_stack", [])
    if stack:
        where += f" in function {' > '.join(stack)}"
    code = getattr(get("code"), "name", get("code"))
    return f"{where} [{code}]: {one_line(get('desc'))}"
