"""inti-export: InTI video transformers from PyTorch to ONNX and TensorRT, with parity checks."""

__version__ = "0.1.0"
