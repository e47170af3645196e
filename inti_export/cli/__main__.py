"""`python -m inti_export.cli`: the same app as the `inti-export` script."""

from inti_export.cli import app

app()
