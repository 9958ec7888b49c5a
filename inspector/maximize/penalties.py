"""Image priors on display RGB: L2 toward grey and total variation (squared differences).

Each returns (penalty per image [N], gradient [N, H, W, 3]); the loop subtracts weight * penalty.
"""

from __future__ import annotations

import numpy as np


def l2(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared distance from mid-grey: keeps colours from saturating."""
    d = rgb - 0.5
    size = d[0].size
    return (d**2).reshape(len(d), -1).sum(1) / size, 2.0 * d / size


def total_variation(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared difference of neighbouring pixels: suppresses high-frequency noise."""
    dy = np.diff(rgb, axis=1)
    dx = np.diff(rgb, axis=2)
    size = rgb[0].size
    value = ((dy**2).reshape(len(rgb), -1).sum(1) + (dx**2).reshape(len(rgb), -1).sum(1)) / size
    grad = np.zeros_like(rgb)
    grad[:, 1:] += 2 * dy
    grad[:, :-1] -= 2 * dy
    grad[:, :, 1:] += 2 * dx
    grad[:, :, :-1] -= 2 * dx
    return value, grad / size
