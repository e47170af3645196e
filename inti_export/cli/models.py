"""`inti-export presets` and `inti-export flops`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console


def _fmt(gflops: float) -> str:
    return f"{gflops:.1f}" if gflops >= 10 else f"{gflops:.4g}"


def presets(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the model presets with frames, InTI positions, parameters and GFLOPs."""
    with cli_errors():
        from inti_export.models import list_presets
        from inti_export.models.flops import count_flops

        reports = [count_flops(name) for name in list_presets()]
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in reports], indent=2))
        return
    from rich.table import Table

    table = Table(title="inti-export presets (GFLOPs per clip, multiply-add counted once)")
    for col in ("preset", "frames", "InTI after blocks", "frames per stage", "params (M)", "GFLOPs", "InTI GFLOPs"):
        table.add_column(col, justify="left" if col == "preset" else "right")
    for r in reports:
        table.add_row(
            r.preset,
            str(r.frames),
            ", ".join(map(str, r.insert_before)) or "-",
            " / ".join(map(str, r.frames_per_stage)),
            f"{r.params / 1e6:.1f}",
            _fmt(r.gflops),
            _fmt(r.inti_gflops),
        )
    console().print(table)


def flops(
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset name (see `inti-export presets`).")] = "inti-b16",
    frames: Annotated[int | None, typer.Option("--frames", "-t", help="Override the frame count.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Count GFLOPs per clip (multiply-add counted once, as the paper's Table 1)."""
    overrides = {} if frames is None else {"frames": frames}
    with cli_errors():
        from inti_export.models.flops import count_flops

        report = count_flops(preset, **overrides)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        typer.echo(
            f"{report.preset}: {report.gflops:.2f} GFLOPs per clip of {report.frames} frames "
            f"({report.inti_gflops:.2f} in InTI layers), {report.params / 1e6:.2f} M params"
        )


def register(app: typer.Typer) -> None:
    app.command("presets")(presets)
    app.command("flops")(flops)
