"""Random geometric transforms ("transformation robustness") as one bilinear resampling.

Each transform (pad, jitter, scale, rotate, center cut) is an affine map from output pixel
coordinates to source coordinates plus an output size; a chain composes into one matrix and
is applied with one bilinear sampling. The sampling is linear in the image (plus a constant
fill where it reads outside the source), so its exact adjoint is a scatter-add with the same
weights: that is how the gradient goes back from the model input to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Size = tuple[int, int]


@dataclass(frozen=True)
class Affine:
    """Output (y, x) -> source (y, x) as a 3x3 homogeneous matrix, and the output size."""

    matrix: np.ndarray
    size: Size

    def then(self, nxt: Affine) -> Affine:
        """This transform, then `nxt` on its output."""
        return Affine(self.matrix @ nxt.matrix, nxt.size)


def _shift(dy: float, dx: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dy], [0.0, 1.0, dx], [0.0, 0.0, 1.0]])


def pad(size: Size, p: int) -> Affine:
    """Grow the canvas by p pixels on every side (filled by the sampler's fill value)."""
    return Affine(_shift(-p, -p), (size[0] + 2 * p, size[1] + 2 * p))


def jitter(size: Size, d: int, oy: int, ox: int) -> Affine:
    """Crop d pixels off the canvas at offset (oy, ox) in [0, d): a random translation."""
    return Affine(_shift(oy, ox), (size[0] - d, size[1] - d))


def _about_center(size: Size, linear: np.ndarray) -> np.ndarray:
    cy, cx = (size[0] - 1) / 2.0, (size[1] - 1) / 2.0
    m = np.eye(3)
    m[:2, :2] = linear
    return _shift(cy, cx) @ m @ _shift(-cy, -cx)


def scale(size: Size, s: float) -> Affine:
    """Zoom by s about the center (s > 1 enlarges the content), size kept."""
    return Affine(_about_center(size, np.eye(2) / s), size)


def rotate(size: Size, degrees: float) -> Affine:
    """Rotate the content by `degrees` about the center, size kept."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    return Affine(_about_center(size, np.array([[c, -s], [s, c]])), size)


def center(size: Size, out: Size) -> Affine:
    """Cut (or grey-pad) the canvas to `out` around its center, at scale 1."""
    return Affine(_shift((size[0] - out[0]) // 2, (size[1] - out[1]) // 2), out)


class Resample:
    """Bilinear sampling of [N, H, W, C] images at an Affine's source points, with its adjoint."""

    def __init__(self, affine: Affine, source: Size, fill: float = 0.5) -> None:
        ho, wo = affine.size
        h, w = source
        yy, xx = np.meshgrid(np.arange(ho, dtype=np.float64), np.arange(wo, dtype=np.float64),
                             indexing="ij")
        pts = np.stack([yy.ravel(), xx.ravel(), np.ones(ho * wo)])
        sy, sx = (affine.matrix @ pts)[:2]
        y0, x0 = np.floor(sy), np.floor(sx)
        fy, fx = sy - y0, sx - x0
        idx, wts = [], []
        for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                            (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            yi, xi = y0 + dy, x0 + dx
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            idx.append(np.where(inside, yi * w + xi, 0).astype(np.int64))
            wts.append(np.where(inside, wgt, 0.0))
        self.index = np.concatenate(idx)  # [4P]: the four corners of every output pixel
        self.weight = np.concatenate(wts).astype(np.float32)  # [4P]
        self.offset = (fill * (1.0 - self.weight.reshape(4, -1).sum(0))).astype(np.float32)  # [P]
        self.source, self.size = source, affine.size
        # the adjoint adds every contribution onto its source pixel; split the contributions into
        # layers in which no source pixel repeats, so each layer is one vectorized `+=`
        used = np.flatnonzero(self.weight)  # corners outside the source contribute nothing
        order = used[np.argsort(self.index[used], kind="stable")]
        target = self.index[order]
        starts = np.flatnonzero(np.diff(target, prepend=-1))
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        pixel = order % (ho * wo)
        self.layers = [(target[rank == j], pixel[rank == j], self.weight[order[rank == j]][:, None])
                       for j in range(int(rank.max(initial=-1)) + 1)]

    @staticmethod
    def _rows(img: np.ndarray) -> np.ndarray:
        """[N, H, W, C] -> [H*W, N*C]: one row per pixel, so gathers move whole rows."""
        n, c = img.shape[0], img.shape[-1]
        return img.reshape(n, -1, c).transpose(1, 0, 2).reshape(-1, n * c)

    @staticmethod
    def _images(rows: np.ndarray, n: int, size: Size) -> np.ndarray:
        return rows.reshape(*size, n, -1).transpose(2, 0, 1, 3)

    def linear(self, img: np.ndarray) -> np.ndarray:
        """The linear part S x (no fill)."""
        taps = self._rows(img)[self.index] * self.weight[:, None]
        return self._images(taps.reshape(4, -1, taps.shape[1]).sum(0), len(img), self.size)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """S x + fill * (1 - S 1): the transformed image."""
        return self.linear(img) + self.offset.reshape(1, *self.size, 1)

    def adjoint(self, grad: np.ndarray) -> np.ndarray:
        """S^T g: pull a gradient on the output back onto the source image."""
        rows = self._rows(grad)
        out = np.zeros((self.source[0] * self.source[1], rows.shape[1]), np.float32)
        for target, pixel, weight in self.layers:
            out[target] += rows[pixel] * weight
        return self._images(out, len(grad), self.source)


@dataclass(frozen=True)
class Robustness:
    """Lucid's standard chain: pad -> jitter -> scale -> rotate -> jitter.

    Lucid feeds the resulting larger canvas to the model; models with a fixed input size cannot
    take it, so we cut the model's input size out of its center instead (scale stays 1).
    """

    pad: int = 12
    jitter: tuple[int, ...] = (8, 4)
    scale: float = 0.1  # uniform zoom in [1 - scale, 1 + scale]
    rotate: float = 10.0  # uniform angle in [-rotate, rotate] degrees

    def sample(self, rng: np.random.Generator, size: Size, out: Size) -> Affine:
        """Draw one random chain mapping an image of `size` onto a model input of `out`."""
        chain = pad(size, self.pad)
        first, *rest = self.jitter or (0,)
        chain = self._jitter(rng, chain, first)
        s = float(rng.uniform(1 - self.scale, 1 + self.scale))
        chain = chain.then(scale(chain.size, s))
        chain = chain.then(rotate(chain.size, float(rng.uniform(-self.rotate, self.rotate))))
        for d in rest:
            chain = self._jitter(rng, chain, d)
        return chain.then(center(chain.size, out))

    @staticmethod
    def _jitter(rng: np.random.Generator, chain: Affine, d: int) -> Affine:
        if d <= 0:
            return chain
        oy, ox = (int(v) for v in rng.integers(0, d, size=2))
        return chain.then(jitter(chain.size, d, oy, ox))
