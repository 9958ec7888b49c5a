"""Image parameterizations: what the optimizer changes, and how it becomes display RGB in [0, 1].

`FourierImage` holds a spectrum scaled by 1/frequency^decay (so every spatial frequency learns at
a similar rate), `PixelImage` holds pixels; both go through a fixed colour decorrelation (the
square root of ImageNet's colour covariance, as published with Lucid) and a sigmoid into valid
RGB. `rgb(p)` maps parameters to images, `pullback(p, g)` maps an image gradient back to them.
"""

from __future__ import annotations

import numpy as np

# sqrt of the ImageNet RGB colour correlation (Olah et al., Distill 2017/2018), column-normalized
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR = (_COLOR_SQRT / np.linalg.norm(_COLOR_SQRT, axis=0).max()).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


class _Colour:
    """Linear colour mixing + sigmoid, shared by both parameterizations."""

    def __init__(self, decorrelate: bool) -> None:
        self.mix = COLOR if decorrelate else np.eye(3, dtype=np.float32)

    def to_rgb(self, lin: np.ndarray) -> np.ndarray:
        """[N, H, W, 3] unbounded -> [N, H, W, 3] in (0, 1)."""
        return _sigmoid(lin @ self.mix.T)

    def pull(self, rgb: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Gradient on rgb -> gradient on the linear image before mixing."""
        return (grad * rgb * (1.0 - rgb)) @ self.mix


class PixelImage(_Colour):
    """One free value per pixel and channel."""

    def __init__(self, size: tuple[int, int], decorrelate: bool = True) -> None:
        super().__init__(decorrelate)
        self.size = size

    def init(self, rng: np.random.Generator, n: int, sd: float = 0.01) -> np.ndarray:
        return (sd * rng.standard_normal((n, *self.size, 3))).astype(np.float32)

    def linear(self, p: np.ndarray) -> np.ndarray:
        return p

    def linear_adjoint(self, g: np.ndarray) -> np.ndarray:
        return g

    def rgb(self, p: np.ndarray) -> np.ndarray:
        return self.to_rgb(p)

    def pullback(self, p: np.ndarray, grad: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray:
        """Gradient on the image -> gradient on the parameters (`rgb`: rgb(p) if already known)."""
        return self.pull(self.rgb(p) if rgb is None else rgb, grad)

    def blur(self, p: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian blur of the pixel parameters (a smoothness prior every few steps)."""
        r = max(1, int(np.ceil(3 * sigma)))
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        k = (k / k.sum()).astype(np.float32)
        for axis in (1, 2):
            padded = np.pad(p, [(r, r) if a == axis else (0, 0) for a in range(4)], mode="reflect")
            p = sum(k[i] * np.take(padded, range(i, i + p.shape[axis]), axis=axis)
                    for i in range(2 * r + 1))
        return p.astype(np.float32)


class FourierImage(_Colour):
    """A real spectrum [N, 3, H, W//2+1, 2] (real, imag), scaled by 1/frequency^decay."""

    def __init__(self, size: tuple[int, int], decorrelate: bool = True, decay: float = 1.0) -> None:
        super().__init__(decorrelate)
        self.size = size
        h, w = size
        self.freq = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None] ** 2)
        self.scale = (1.0 / np.maximum(self.freq, 1.0 / max(h, w)) ** decay / 4.0).astype(np.float32)
        # irfft reads columns strictly between DC and Nyquist twice (for +f and -f)
        self.twice = np.full(w // 2 + 1, 2.0, np.float32)
        self.twice[0] = 1.0
        if w % 2 == 0:
            self.twice[-1] = 1.0

    def init(self, rng: np.random.Generator, n: int, sd: float = 0.01) -> np.ndarray:
        h, w = self.size
        return (sd * rng.standard_normal((n, 3, h, w // 2 + 1, 2))).astype(np.float32)

    def linear(self, p: np.ndarray) -> np.ndarray:
        """Spectrum -> [N, H, W, 3] linear image (before colour mixing)."""
        spec = (p[..., 0] + 1j * p[..., 1]) * self.scale
        img = np.fft.irfft2(spec, s=self.size, norm="ortho")
        return img.transpose(0, 2, 3, 1).astype(np.float32)

    def linear_adjoint(self, g: np.ndarray) -> np.ndarray:
        """Exact adjoint of `linear` (checked by a dot-product test)."""
        spec = np.fft.rfft2(g.transpose(0, 3, 1, 2), norm="ortho") * (self.scale * self.twice)
        return np.stack([spec.real, spec.imag], axis=-1).astype(np.float32)

    def rgb(self, p: np.ndarray) -> np.ndarray:
        return self.to_rgb(self.linear(p))

    def pullback(self, p: np.ndarray, grad: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray:
        """Gradient on the image -> gradient on the spectrum (`rgb`: rgb(p) if already known)."""
        return self.linear_adjoint(self.pull(self.rgb(p) if rgb is None else rgb, grad))

    def blur(self, p: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian blur of the pre-sigmoid image, done exactly in frequency space."""
        gain = np.exp(-2.0 * (np.pi * sigma * self.freq) ** 2)
        return (p * gain[..., None]).astype(np.float32)
