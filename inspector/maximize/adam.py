"""Adam (Kingma & Ba) for gradient ascent on a numpy array, one state per parameter tensor."""

from __future__ import annotations

import numpy as np


class Adam:
    """Ascent: p <- p + lr * m_hat / (sqrt(v_hat) + eps)."""

    def __init__(self, lr: float = 0.05, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.t = 0

    def step(self, p: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Return the parameters after one step up the gradient."""
        if self.m is None or self.v is None:
            self.m, self.v = np.zeros_like(grad), np.zeros_like(grad)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return (p + self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype)
