"""PyTorch -> ONNX: the custom InTI op with its ONNX function, graph passes, checks."""

from inti_export.exporter.onnx_export import ExportResult, ExportSpec, export_onnx, export_preset, verify_onnx
from inti_export.vocab import read_metadata

__all__ = ["ExportResult", "ExportSpec", "export_onnx", "export_preset", "read_metadata", "verify_onnx"]
