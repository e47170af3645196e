"""The `inti-export` command line: a thin Typer app over the library.

Each command lives in its own module under `inti_export/tools/cli_*.py` and exposes
`register(app)`. Command bodies parse options, call one library function and turn an
`IntiExportError` into a one-line message with exit code 1.
"""

from __future__ import annotations

import importlib
import logging

import typer

from inti_export.tools._cli import OneLineErrors

app = typer.Typer(
    name="inti-export",
    help="Export InTI video transformers to ONNX and TensorRT, and prove parity on the way.",
    no_args_is_help=True,
    cls=OneLineErrors,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One module per command (or group of closely related commands), in help order.
_COMMAND_MODULES = (
    "inti_export.tools.cli_models",  # presets, flops
    "inti_export.tools.cli_onnx",  # onnx
    "inti_export.tools.cli_trt",  # trt, inspect
    "inti_export.tools.cli_calibrate",  # calibrate
    "inti_export.tools.cli_parity",  # parity
    "inti_export.tools.cli_bench",  # bench
    "inti_export.tools.cli_pipeline",  # pipeline
    "inti_export.tools.cli_serve",  # triton-repo, serve, infer
    "inti_export.tools.cli_embed",  # embed
    "inti_export.tools.cli_eval",  # eval, task
    "inti_export.tools.cli_optimize",  # optimize
    "inti_export.tools.cli_stream",  # stream
)


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages to stderr."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as _e:  # a command module not written yet
        if _e.name != _name:
            raise
        continue
    _module.register(app)


if __name__ == "__main__":  # python -m inti_export.cli
    app()
