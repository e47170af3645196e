"""The `inti-export` command line (Typer only): `main` builds the app, one module per command.

The entry point stays `inti_export.cli:app`.
"""

from inti_export.cli.main import app

__all__ = ["app"]
