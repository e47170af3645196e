"""Helpers shared by the CLI modules: error handling, signals, console output and option parsers."""

from __future__ import annotations

import contextlib
import enum
import signal
import sys
import traceback
from collections.abc import Iterator

import typer
from typer.core import TyperGroup

from inti_export.errors import Interrupted, IntiExportError, interrupt_handler, one_line

# The click that typer runs on (recent typer versions vendor their own copy): its exception base class.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class OneLineErrors(TyperGroup):
    """The root command group: a usage error (bad option value, missing argument) is one line on stderr.

    Click would print the usage, a hint and the error over several lines (typer: a panel).
    """

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        with interrupt_signals():
            return self._main(*args, standalone_mode=standalone_mode, **kwargs)

    def _main(self, *args, standalone_mode: bool = True, **kwargs):
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except _ClickException as e:
            if not standalone_mode:
                raise
            where = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) is not None else ""
            typer.echo(f"error: {one_line(e.format_message())}{where}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("interrupted", err=True)
            sys.exit(130)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


@contextlib.contextmanager
def interrupt_signals() -> Iterator[None]:
    """While a command runs, SIGINT and SIGTERM raise `Interrupted` in the main thread, so every write
    cleans up the same way; the previous handlers come back afterwards (the CLI can run in-process)."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, interrupt_handler)
        except ValueError:  # not the main thread (e.g. a test runner's worker): leave it alone
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
        typer.echo("interrupted", err=True)
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


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    """Comma-separated integers (`--batch 1,4,8`); one line naming the option when they are not."""
    try:
        items = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise IntiExportError(f"{what}={text!r}: expected comma-separated integers such as 1,4,8") from None
    if not items:
        raise IntiExportError(f"{what}={text!r}: give at least one value")
    return items


def parse_words(text: str, kind: type[enum.Enum], what: str) -> tuple[str, ...]:
    """Comma-separated values of the option enum `kind` (`--runners torch,ort`), each checked."""
    from inti_export.vocab import values

    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in values(kind)]
    if bad or not items:
        raise IntiExportError(f"{what}={text!r}: use one or more of {', '.join(values(kind))}, comma-separated")
    return items
