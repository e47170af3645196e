"""The `inti-export` command line: a thin Typer app over the library.

Each command lives in its own module under `inti_export/cli/` and exposes
`register(app)`. Command bodies parse options, call one library function and turn an
`IntiExportError` into a one-line message with exit code 1.
"""

from __future__ import annotations

import logging

import typer

from inti_export.cli import (
    bench,
    calibrate,
    embed,
    eval,
    models,
    onnx,
    optimize,
    parity,
    pipeline,
    serve,
    stream,
    trt,
)
from inti_export.cli._common import OneLineErrors

app = typer.Typer(
    name="inti-export",
    help="Export InTI video transformers to ONNX and TensorRT, and prove parity on the way.",
    no_args_is_help=True,
    cls=OneLineErrors,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages to stderr."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


# One module per command (or group of closely related commands), in help order. Explicit imports: a
# mistyped or broken command module fails loudly instead of silently dropping its command.
for _module in (
    models,  # presets, flops
    onnx,  # onnx
    trt,  # trt, inspect
    calibrate,  # calibrate
    parity,  # parity
    bench,  # bench
    pipeline,  # pipeline
    serve,  # triton-repo, serve, infer
    embed,  # embed
    eval,  # eval, task
    optimize,  # optimize
    stream,  # stream
):
    _module.register(app)
