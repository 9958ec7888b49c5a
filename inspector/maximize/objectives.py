"""Objectives: a value per image and its gradient (the backward seed) w.r.t. one tensor.

Every objective reads one tensor of the model (a layer, or the logits). `value(a)` gives one
number per image of the batch; `seed(a)` gives d(sum of values)/d a, which ModelAccess.backward
turns into the gradient on the model input. Linear objectives (channel, neuron, logit) have a
seed that does not depend on `a`, so one backward call per step is enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inspector import errors

KINDS = ("channel", "neuron", "layer", "logit", "probability")
LINEAR = ("channel", "neuron", "logit")


@dataclass(frozen=True)
class Term:
    """weight * kind(tensor)[channel]; position (y, x) only for "neuron" (None: the center)."""

    kind: str
    tensor: str
    channels: tuple[int, ...]  # one per image of the batch ("layer" ignores them)
    weight: float = 1.0
    position: tuple[int, int] | None = None

    def check(self, a: np.ndarray) -> None:
        """Fail early, naming the tensor, when a channel or position does not exist in it."""
        if a.ndim < 2:
            raise errors.InvalidArgument(
                f"tensor '{self.tensor}' has shape {list(a.shape)}; objectives need [N, C, ...]",
                field="layer")
        if self.kind != "layer":
            bad = [c for c in self.channels if not 0 <= c < a.shape[1]]
            if bad:
                raise errors.InvalidArgument(
                    f"channel {bad[0]} does not exist in '{self.tensor}', which has {a.shape[1]} "
                    f"channels (0..{a.shape[1] - 1})", field="channels")
        if self.kind == "neuron":
            if a.ndim != 4:
                raise errors.InvalidArgument(
                    f"a neuron objective needs a 4-D [N, C, H, W] tensor; '{self.tensor}' has "
                    f"shape {list(a.shape)}", field="objective")
            y, x = self._position(a)
            if not (0 <= y < a.shape[2] and 0 <= x < a.shape[3]):
                raise errors.InvalidArgument(
                    f"position ({y}, {x}) is outside '{self.tensor}' of spatial size "
                    f"{a.shape[2]}x{a.shape[3]}", field="position")

    def _position(self, a: np.ndarray) -> tuple[int, int]:
        return self.position if self.position is not None else (a.shape[2] // 2, a.shape[3] // 2)

    def _mask(self, a: np.ndarray) -> np.ndarray:
        """d value / d a for the linear kinds: 1/size over the chosen channel (or neuron)."""
        m = np.zeros(a.shape, np.float32)
        rows = np.arange(a.shape[0])
        ch = np.asarray(self.channels[: a.shape[0]])
        if self.kind == "neuron":
            y, x = self._position(a)
            m[rows, ch, y, x] = 1.0
        else:  # channel / logit: the mean over everything after the channel axis
            m[rows, ch] = 1.0 / max(1, int(np.prod(a.shape[2:])))
        return m

    def value(self, a: np.ndarray) -> np.ndarray:
        """[N] objective per image (times the weight)."""
        a = a.astype(np.float64)
        n = a.shape[0]
        if self.kind == "layer":
            v = (a.reshape(n, -1) ** 2).mean(1)
        elif self.kind == "probability":
            p = _softmax(a.reshape(n, a.shape[1], -1).mean(2))
            v = p[np.arange(n), np.asarray(self.channels[:n])]
        else:
            v = (self._mask(a) * a).reshape(n, -1).sum(1)
        return (self.weight * v).astype(np.float32)

    def seed(self, a: np.ndarray) -> np.ndarray:
        """d(sum of value) / d a, same shape as a."""
        n = a.shape[0]
        if self.kind == "layer":
            g = 2.0 * a / (a.size // n)
        elif self.kind == "probability":
            size = int(np.prod(a.shape[2:]))
            p = _softmax(a.reshape(n, a.shape[1], -1).astype(np.float64).mean(2))
            onehot = np.eye(a.shape[1])[np.asarray(self.channels[:n])]
            dlogit = p[np.arange(n), np.asarray(self.channels[:n])][:, None] * (onehot - p)
            g = np.broadcast_to((dlogit / size).reshape(*dlogit.shape, *[1] * (a.ndim - 2)), a.shape)
        else:
            g = self._mask(a)
        return (self.weight * g).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def diversity(a: np.ndarray) -> tuple[float, np.ndarray]:
    """Lucid's batch diversity: mean pairwise cosine similarity of the images' Gram matrices.

    Returns (D, dD/da). Subtracting weight * D pushes the images of a batch apart in style.
    """
    n, c = a.shape[:2]
    f = a.reshape(n, c, -1).astype(np.float64)  # [N, C, P]
    gram = f @ f.transpose(0, 2, 1)  # [N, C, C]
    norm = np.sqrt((gram**2).sum((1, 2), keepdims=True)) + 1e-10
    u = gram / norm
    total = u.sum(0)
    d = float(sum((u[i] * (total - u[i])).sum() for i in range(n)) / n)
    grad_u = 2.0 / n * (total[None] - u)
    grad_g = (grad_u - u * (u * grad_u).sum((1, 2), keepdims=True)) / norm
    grad_f = (grad_g + grad_g.transpose(0, 2, 1)) @ f
    return d, grad_f.reshape(a.shape).astype(np.float32)


def group_by_tensor(terms: Sequence[Term]) -> dict[str, list[Term]]:
    """Terms reading the same tensor share one backward call."""
    groups: dict[str, list[Term]] = {}
    for t in terms:
        groups.setdefault(t.tensor, []).append(t)
    return groups
