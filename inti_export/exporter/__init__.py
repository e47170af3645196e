"""PyTorch -> ONNX: the custom InTI op with its ONNX function, graph passes, checks."""

from inti_export.exporter.onnx_export import ExportResult, ExportSpec, export_onnx, read_metadata, verify_onnx

__all__ = ["ExportResult", "ExportSpec", "export_onnx", "read_metadata", "verify_onnx"]
