"""Workflows across layers that return reports (no typer, no rich): inputs, engine, bench, pipeline,
stream, optimize/. The CLI calls these; docs/architecture.md lists each module."""
