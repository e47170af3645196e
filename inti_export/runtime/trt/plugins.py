"""Registering the `inti::TokenInterpolate` plugin (plugins/trt_plugin.py) with full TensorRT.

    register_plugins(trt) -> ([PluginInfo dict for the manifest], the plugin module)
    plugins_needing_registration(manifest) -> the manifest's plugins that run Python at inference

An engine built with the AOT implementation holds the compiled kernel: it runs without torch,
Triton or `tensorrt.plugin`, so only engines using the Python `impl` need the plugin registered.
"""

from __future__ import annotations

import importlib
from typing import Any

from inti_export.errors import EngineError
from inti_export.runtime.trt.loader import runtime_name
from inti_export.vocab import TrtRuntime

PLUGIN_MODULE = "inti_export.plugins.trt_plugin"


def register_plugins(trt, aot: bool = True) -> tuple[list[dict[str, Any]], Any]:
    """Register `inti::TokenInterpolate`; ([PluginInfo dict with `aot`], that module)."""
    if runtime_name(trt) == TrtRuntime.tensorrt_rtx.value:
        raise EngineError("TensorRT-RTX does not support user plugins; build with --no-plugin")
    try:
        module = importlib.import_module(PLUGIN_MODULE)
    except ModuleNotFoundError as e:
        if e.name not in (PLUGIN_MODULE, "inti_export.plugins"):
            raise
        raise EngineError(f"--plugin needs {PLUGIN_MODULE}, which this install lacks: build with --no-plugin") from e
    info = module.register_plugin(trt)  # RuntimeUnavailableError says what is missing (TensorRT >= 10.9, triton)
    return [{**info.to_dict(), "aot": bool(aot)}], module


def plugins_needing_registration(plugins: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plugin entries whose engine calls back into Python (`aot` false, or absent in an old manifest)."""
    return [p for p in plugins if not p.get("aot", False)]
