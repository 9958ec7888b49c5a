"""Parameterizations: exact adjoints, gradients vs finite differences, blur, value range."""

import numpy as np
import pytest

from inspector.maximize.param import COLOR, FourierImage, PixelImage


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (6, 5), (16, 12)])
def test_fourier_map_has_an_exact_adjoint(size):
    rng = np.random.default_rng(0)
    f = FourierImage(size)
    p = rng.standard_normal((2, 3, size[0], size[1] // 2 + 1, 2))
    y = rng.standard_normal((2, *size, 3))
    lhs = np.sum(f.linear(p).astype(np.float64) * y)
    rhs = np.sum(p * f.linear_adjoint(y).astype(np.float64))
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_colour_decorrelation_is_the_normalized_published_matrix():
    # Lucid's color_correlation_svd_sqrt, divided by its largest column norm (the first column's)
    published = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
    np.testing.assert_allclose(COLOR, published / np.sqrt(0.26**2 + 2 * 0.27**2), rtol=1e-6)
    assert np.linalg.matrix_rank(COLOR) == 3  # invertible: every colour is reachable


@pytest.mark.parametrize("kind", ["fft", "pixel"])
@pytest.mark.parametrize("decorrelate", [True, False])
def test_pullback_matches_finite_differences(kind, decorrelate):
    size = (10, 11)
    param = FourierImage(size, decorrelate) if kind == "fft" else PixelImage(size, decorrelate)
    rng = np.random.default_rng(3)
    p = param.init(rng, 2, sd=0.5).astype(np.float64)
    g = rng.standard_normal((2, *size, 3))
    d = rng.standard_normal(p.shape)
    eps = 1e-3

    def f(q):
        return float(np.sum(param.rgb(q.astype(np.float32)).astype(np.float64) * g))

    numeric = (f(p + eps * d) - f(p - eps * d)) / (2 * eps)
    analytic = float(np.sum(param.pullback(p.astype(np.float32), g.astype(np.float32)) * d))
    assert analytic == pytest.approx(numeric, rel=2e-2)


@pytest.mark.parametrize("kind", [FourierImage, PixelImage])
def test_images_are_valid_rgb_and_start_near_grey(kind):
    param = kind((24, 24))
    rgb = param.rgb(param.init(np.random.default_rng(0), 3))
    assert rgb.shape == (3, 24, 24, 3)
    assert np.all((rgb > 0) & (rgb < 1))
    assert abs(rgb.mean() - 0.5) < 0.01 and 0 < rgb.std() < 0.05
    big = param.rgb(param.init(np.random.default_rng(0), 1, sd=1e4))
    assert np.all((big >= 0) & (big <= 1))


def test_fourier_spectrum_favours_low_frequencies():
    f = FourierImage((32, 32))
    img = f.linear(f.init(np.random.default_rng(0), 8, sd=1.0))[..., 0]
    img = img - img.mean((1, 2), keepdims=True)
    # white noise has std(dx) = 1.41 std; a 1/f spectrum makes neighbours correlate
    assert np.diff(img, axis=2).std() < 1.0 * img.std()


def test_blur_keeps_the_mean_and_smooths_both_parameterizations():
    rng = np.random.default_rng(0)
    pix = PixelImage((16, 16))
    p = rng.standard_normal((1, 16, 16, 3)).astype(np.float32)
    b = pix.blur(p, 1.0)
    assert b.mean() == pytest.approx(p.mean(), abs=0.03)
    assert np.diff(b, axis=1).std() < 0.6 * np.diff(p, axis=1).std()
    four = FourierImage((16, 16))
    q = four.init(rng, 1, sd=1.0)
    lin, blurred = four.linear(q), four.linear(four.blur(q, 1.0))
    assert blurred.mean() == pytest.approx(lin.mean(), abs=1e-5)  # DC gain is exactly 1
    assert np.diff(blurred, axis=1).std() < 0.6 * np.diff(lin, axis=1).std()
