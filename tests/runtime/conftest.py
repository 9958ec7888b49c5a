"""Real third-party models for graph tests (until the shared `real_model_path` fixture lands)."""

from pathlib import Path

import pytest

MODELS = Path("/tmp/models")


@pytest.fixture
def real_model_path():
    """Return a function name -> Path of a real .onnx model; skip the test if it is missing."""

    def find(name: str) -> Path:
        hits = sorted(MODELS.rglob(name)) if MODELS.is_dir() else []
        if not hits:
            pytest.skip(f"real model {name} not found under {MODELS}")
        return hits[0]

    return find
