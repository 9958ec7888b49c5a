"""inspector: see what any ONNX CNN sees, served over gRPC.

In-process use is first-class: `from inspector import Inspector, InputData` gives every call the
service offers (the service is a thin gRPC edge over the same object).
"""

__version__ = "0.1.0"

__all__ = ["InputData", "Inspector", "InspectorConfig"]


def __getattr__(name: str):
    """Import the core lazily, so `import inspector` stays cheap for the CLI and the stubs."""
    if name in ("Inspector", "InputData"):
        from inspector import core

        return getattr(core, name)
    if name == "InspectorConfig":
        from inspector.config import InspectorConfig

        return InspectorConfig
    raise AttributeError(f"module 'inspector' has no attribute {name!r}")
