"""inspector: see what any ONNX CNN sees, served over gRPC."""

__version__ = "0.1.0"
