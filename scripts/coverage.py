"""Which models the gradient engine covers: every model the tests know (factory CNNs and the
real models PyPI packages ship), with the ops that block differentiation, if any.

Run: python scripts/coverage.py   (always exits 0; missing real models are reported, not fatal)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import onnx  # noqa: E402
from factory import resnet18_like, small_cnn  # noqa: E402

from inspector.errors import InspectorError  # noqa: E402
from inspector.graph.autodiff import blocking_ops  # noqa: E402
from inspector.models_zoo import KNOWN, model_path  # noqa: E402

FACTORY: dict[str, Callable[[], onnx.ModelProto]] = {
    "factory/small_cnn": small_cnn,
    "factory/resnet18_like": lambda: resnet18_like(size=64),
    "factory/resnet18_like_bn": lambda: resnet18_like(size=64, bn=True),
}


def known_models() -> Iterator[tuple[str, onnx.ModelProto | str]]:
    """(name, model) for each model, or (name, reason) when a real model is not installed."""
    for name, build in FACTORY.items():
        yield name, build()
    for name in KNOWN:
        try:
            yield name, onnx.load(str(model_path(name)))
        except InspectorError as exc:
            yield name, exc.message


def coverage(model: onnx.ModelProto) -> str:
    """'covered', or the op types (and nodes) that stop d(first output)/d(first input)."""
    try:
        blocking = blocking_ops(model)
    except InspectorError as exc:
        return f"not covered: {exc.message}"
    if blocking:
        return "missing " + ", ".join(f"{op} ({node})" for op, node in blocking)
    return "covered"


def main() -> int:
    for name, model in known_models():
        status = coverage(model) if isinstance(model, onnx.ModelProto) else f"unavailable: {model}"
        print(f"{name}: {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
