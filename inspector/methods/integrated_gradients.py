"""Integrated Gradients with Captum's quadratures, batched over steps, with the completeness gap."""

from __future__ import annotations

import numpy as np

from inspector.errors import InvalidArgument
from inspector.methods.base import Explanation, Method
from inspector.methods.gradients import finish_input
from inspector.methods.maps import positive_int, unit_float
from inspector.methods.run import Run

QUADRATURES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) on [0, 1] as Captum's approximation_methods."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    if method == "riemann_trapezoid":
        if steps < 2:
            raise InvalidArgument("riemann_trapezoid needs steps >= 2", field="steps")
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
        return np.linspace(0.0, 1.0, steps), weights
    offsets = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}
    if method not in offsets:
        raise InvalidArgument(f"unknown integration method {method!r}; use one of {', '.join(QUADRATURES)}",
                              field="method")
    return (np.arange(steps) + offsets[method]) / steps, np.full(steps, 1.0 / steps)


def gaussian_blur(x: np.ndarray, sigma: float, axes: tuple[int, int]) -> np.ndarray:
    """Separable Gaussian blur over the two spatial axes (reflect padding)."""
    radius = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    out = x.astype(np.float64)
    for axis in axes:
        pad = [(0, 0)] * x.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect" if x.shape[axis] > radius else "edge")
        n = x.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return out.astype(x.dtype)


def make_baseline(run: Run, baseline: object, sigma: float) -> np.ndarray:
    """zeros, blurred (Gaussian, sigma in pixels), a number, or an array broadcast to the batch."""
    if isinstance(baseline, str):
        if baseline == "zeros":
            return np.zeros_like(run.x)
        if baseline == "blurred":
            return gaussian_blur(run.x, sigma, (1, 2) if run.layout == "NHWC" else (2, 3))
        raise InvalidArgument(f"unknown baseline {baseline!r}; use zeros, blurred, a number or an array",
                              field="baseline")
    try:
        return np.broadcast_to(np.asarray(baseline, run.x.dtype), run.x.shape).copy()
    except ValueError:
        raise InvalidArgument(f"baseline of shape {list(np.shape(baseline))} does not broadcast to the input "
                              f"{list(run.x.shape)}", field="baseline") from None


class IntegratedGradients(Method):
    name = "integrated_gradients"
    uses_gradients = True
    defaults = {"steps": 50, "method": "gausslegendre", "baseline": "zeros", "blur_sigma": 5.0,
                "batch_size": 32}
    doc = "(x - b) * integral of the gradient along the straight path (Sundararajan et al., ICML 2017)."
    reduce = "abssum"

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        steps = positive_int(params, "steps")
        alphas, weights = quadrature(str(params["method"]), steps)
        base = make_baseline(run, params["baseline"], unit_float(params, "blur_sigma", 0.1, 1e4))
        n = len(run.x)
        rows = np.repeat(np.arange(n), steps)
        step = np.tile(np.arange(steps), n)
        shape = (-1,) + (1,) * (run.x.ndim - 1)

        def path(i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
            r, a = rows[i0:i1], alphas[step[i0:i1]].reshape(shape).astype(np.float32)
            return base[r] + a * (run.x[r] - base[r]), r

        integral = run.gradient_sum(n * steps, path, positive_int(params, "batch_size"), weights[step])
        attribution = (run.x - base) * integral
        rows0 = np.arange(n)
        at_base = run.scores(n, lambda i0, i1: (base[i0:i1], rows0[i0:i1]), max(1, n))
        delta = attribution.reshape(n, -1).sum(axis=1) - (run.score - at_base)
        shown = {k: v for k, v in params.items() if k != "baseline" or isinstance(v, str | int | float)}
        return finish_input(run, self.name, attribution.astype(np.float32), self.reduce, shown,
                            extras={"convergence_delta": delta.astype(np.float32),
                                    "baseline_score": at_base.astype(np.float32)})
