"""Helpers shared by the CLI modules: error handling and console output."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer

from inti_export.errors import IntiExportError


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a domain error into one line on stderr and exit code 1."""
    try:
        yield
    except IntiExportError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def console():
    """A rich console on stdout (imported lazily: rich is not needed to import the package)."""
    from rich.console import Console

    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160)
