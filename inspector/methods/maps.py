"""Map arithmetic shared by the methods: upsampling, per-image scaling, principal components.

Scaling never divides by ~0: a constant map becomes zeros, so no method returns NaN.
"""

from __future__ import annotations

import numpy as np

from inspector.errors import InvalidArgument


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[N, h, w] -> [N, H, W] (bilinear, via the imaging module's resize_map)."""
    from inspector.imaging.render import resize_map

    maps = np.asarray(maps, np.float32)
    if maps.shape[1:] == tuple(size):
        return maps.copy()
    return np.stack([np.asarray(resize_map(m, tuple(size)), np.float32) for m in maps])


def scale_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max scale each image's map to [0, 1]; constant maps become zeros."""
    maps = np.nan_to_num(np.asarray(maps, np.float32))
    flat = maps.reshape(len(maps), -1)
    low = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - low
    ok = span > 1e-12 * np.maximum(1.0, np.abs(low))
    return np.where(ok, (flat - low) / np.where(ok, span, 1.0), 0.0).reshape(maps.shape).astype(np.float32)


def scale_by_max(maps: np.ndarray) -> np.ndarray:
    """Scale non-negative maps by their per-image maximum (zero stays zero); all-zero maps stay zero."""
    maps = np.maximum(np.nan_to_num(np.asarray(maps, np.float32)), 0.0)
    top = maps.reshape(len(maps), -1).max(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))
    return np.where(top > 0, maps / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


def first_component(maps: np.ndarray) -> np.ndarray:
    """[N, C, h, w] -> [N, h, w]: projection on the first principal component over channels.

    As pytorch-grad-cam's get_2d_projection (centered SVD); the sign is chosen so the map
    correlates positively with the channel sum (SVD's sign is arbitrary).
    """
    out = []
    for a in np.nan_to_num(np.asarray(maps, np.float64)):
        flat = a.reshape(a.shape[0], -1).T
        centered = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        proj = centered @ vt[0]
        out.append(_orient(proj, flat.sum(axis=1)).reshape(a.shape[1:]))
    return np.asarray(out, np.float32)


def kernel_first_component(maps: np.ndarray, kernel: str = "sigmoid", gamma: float | None = None) -> np.ndarray:
    """[N, C, h, w] -> [N, h, w]: first kernel-PCA component of the h*w activation vectors (KPCA-CAM).

    Kernels as scikit-learn's KernelPCA defaults: sigmoid tanh(g<a,b> + 1), rbf exp(-g|a-b|^2),
    poly (g<a,b> + 1)^3, linear; g defaults to 1 / C.
    """
    out = []
    for a in np.nan_to_num(np.asarray(maps, np.float64)):
        flat = a.reshape(a.shape[0], -1).T
        g = 1.0 / flat.shape[1] if gamma is None else float(gamma)
        dot = flat @ flat.T
        if kernel == "sigmoid":
            k = np.tanh(g * dot + 1.0)
        elif kernel == "rbf":
            sq = np.diag(dot)
            k = np.exp(-g * np.maximum(sq[:, None] + sq[None, :] - 2 * dot, 0.0))
        elif kernel == "poly":
            k = (g * dot + 1.0) ** 3
        elif kernel == "linear":
            k = dot
        else:
            raise InvalidArgument(f"unknown kernel {kernel!r}; use sigmoid, rbf, poly or linear", field="kernel")
        n = len(k)
        center = np.eye(n) - 1.0 / n
        kc = center @ k @ center
        vals, vecs = np.linalg.eigh(kc)
        proj = vecs[:, -1] * np.sqrt(max(vals[-1], 0.0))
        out.append(_orient(proj, flat.sum(axis=1)).reshape(a.shape[1:]))
    return np.asarray(out, np.float32)


def _orient(proj: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return -proj if np.dot(proj - proj.mean(), reference - reference.mean()) < 0 else proj


def positive_int(params: dict[str, object], name: str, low: int = 1) -> int:
    """params[name] as an int >= low, or an InvalidArgument naming it."""
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InvalidArgument(f"parameter {name} must be an integer >= {low}; got {value!r}", field=name)
    return int(value)


def unit_float(params: dict[str, object], name: str, low: float = 0.0, high: float = 1.0) -> float:
    """params[name] as a float in [low, high], or an InvalidArgument naming it."""
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not low <= value <= high:
        raise InvalidArgument(f"parameter {name} must be a number in [{low}, {high}]; got {value!r}", field=name)
    return float(value)


def flag(params: dict[str, object], name: str) -> bool:
    """params[name] as a bool (also 0/1), or an InvalidArgument naming it ("false" is not False)."""
    value = params[name]
    if isinstance(value, bool | np.bool_) or value in (0, 1):
        return bool(value)
    raise InvalidArgument(f"parameter {name} must be true or false; got {value!r}", field=name)
