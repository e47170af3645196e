"""Helpers shared by the CLI modules: error handling, signals and console output."""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
from collections.abc import Iterator

import typer

from inti_export.errors import Interrupted, IntiExportError, one_line


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread, so every write cleans up the same way."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, _raise_interrupted)
        except ValueError:  # not the main thread (e.g. a test runner's worker): leave it alone
            pass


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a domain error into one line on stderr and exit code 1; an interrupt into 130 (SIGINT) or 143."""
    try:
        yield
    except IntiExportError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    except KeyboardInterrupt as e:
        code = e.exit_code if isinstance(e, Interrupted) else 130
        typer.echo("interrupted: nothing was written", err=True)
        raise typer.Exit(code) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as e:
        import logging

        logging.getLogger("inti_export").debug("unexpected error", exc_info=True)
        typer.echo(f"error: unexpected {type(e).__name__}: {one_line(e)} (run with -v for the traceback;"
                   " please report it)", err=True)
        if logging.getLogger("inti_export").isEnabledFor(logging.DEBUG):
            traceback.print_exc()
        raise typer.Exit(1) from e


def console():
    """A rich console on stdout (imported lazily: rich is not needed to import the package)."""
    from rich.console import Console

    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160)
