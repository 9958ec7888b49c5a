"""Session fixtures of the audit tests: the planted-defect model and its feature maps."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from audit_models import OrtAccess, planted_images, planted_model


@pytest.fixture(scope="session")
def planted() -> onnx.ModelProto:
    return planted_model()


@pytest.fixture(scope="session")
def planted_maps(planted: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every audited tensor over all images, from one plain onnxruntime run (the numpy reference)."""
    from inspector.audit import default_audit_tensors
    names = default_audit_tensors(planted)
    maps = OrtAccess(planted).forward(planted_images(), fetch=names)
    return {n: maps[n] for n in names}
