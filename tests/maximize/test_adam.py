"""Adam: the textbook first step and convergence on a concave quadratic."""

import numpy as np
import pytest

from inspector.maximize.adam import Adam


def test_first_step_is_lr_times_gradient_sign():
    p = np.zeros(4, np.float32)
    out = Adam(lr=0.1).step(p, np.array([3.0, -0.01, 250.0, -7.0], np.float32))
    np.testing.assert_allclose(out, [0.1, -0.1, 0.1, -0.1], rtol=1e-5)


def test_climbs_to_the_maximum_of_a_concave_quadratic():
    target = np.array([3.0, -2.0, 0.5], np.float32)
    p, opt = np.zeros(3, np.float32), Adam(lr=0.05)
    for _ in range(2000):
        p = opt.step(p, -2.0 * (p - target))
    np.testing.assert_allclose(p, target, atol=1e-2)


def test_second_step_follows_the_moment_estimates():
    opt, p = Adam(lr=1.0, beta1=0.5, beta2=0.5, eps=0.0), np.zeros(1, np.float32)
    p = opt.step(p, np.array([1.0], np.float32))
    p = opt.step(p, np.array([3.0], np.float32))
    m_hat = (0.5 * 0.5 + 0.5 * 3.0) / (1 - 0.25)
    v_hat = (0.25 * 1.0 + 0.5 * 9.0) / (1 - 0.25)
    assert p[0] == pytest.approx(1.0 + m_hat / np.sqrt(v_hat), rel=1e-6)
