"""Objectives: values against numpy, seeds against finite differences, early errors."""

import numpy as np
import pytest

from inspector import errors
from inspector.maximize.objectives import Term, diversity


def _fd_check(value, seed, a, eps=1e-3):
    rng = np.random.default_rng(5)
    d = rng.standard_normal(a.shape)
    num = (value(a + eps * d).sum() - value(a - eps * d).sum()) / (2 * eps)
    ana = float(np.sum(seed(a).astype(np.float64) * d))
    assert ana == pytest.approx(num, rel=1e-3, abs=1e-6)
    assert abs(ana) > 1e-4


ACT = np.random.default_rng(0).standard_normal((3, 5, 6, 7))


def test_channel_neuron_layer_values_match_numpy():
    a = ACT
    np.testing.assert_allclose(Term("channel", "t", (1, 4, 0)).value(a),
                               [a[0, 1].mean(), a[1, 4].mean(), a[2, 0].mean()], rtol=1e-5)
    np.testing.assert_allclose(Term("neuron", "t", (1, 4, 0)).value(a),
                               [a[0, 1, 3, 3], a[1, 4, 3, 3], a[2, 0, 3, 3]], rtol=1e-5)
    np.testing.assert_allclose(Term("neuron", "t", (2, 2, 2), position=(1, 5)).value(a),
                               a[:, 2, 1, 5], rtol=1e-5)
    np.testing.assert_allclose(Term("layer", "t", (0, 0, 0), weight=2.0).value(a),
                               2 * (a**2).reshape(3, -1).mean(1), rtol=1e-5)


def test_logit_and_probability_values_match_numpy():
    z = np.random.default_rng(1).standard_normal((2, 10)) * 3
    np.testing.assert_allclose(Term("logit", "t", (3, 7)).value(z), [z[0, 3], z[1, 7]], rtol=1e-5)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(Term("probability", "t", (3, 7)).value(z), [p[0, 3], p[1, 7]],
                               rtol=1e-5)


@pytest.mark.parametrize("term,shape", [
    (Term("channel", "t", (1, 4, 0), weight=0.7), (3, 5, 6, 7)),
    (Term("neuron", "t", (1, 4, 0)), (3, 5, 6, 7)),
    (Term("layer", "t", (0, 0, 0)), (3, 5, 6, 7)),
    (Term("logit", "t", (2, 9, 0)), (3, 10)),
    (Term("probability", "t", (2, 9, 0)), (3, 10)),
    (Term("probability", "t", (2, 9, 0)), (3, 10, 1, 1)),
], ids=["channel", "neuron", "layer", "logit", "probability", "probability_4d"])
def test_seed_is_the_gradient_of_the_value(term, shape):
    a = np.random.default_rng(2).standard_normal(shape)
    _fd_check(lambda x: term.value(x).astype(np.float64), term.seed, a)


def test_diversity_gradient_matches_finite_differences_and_prefers_different_images():
    a = np.random.default_rng(3).standard_normal((3, 4, 5, 5))
    _fd_check(lambda x: np.array([diversity(x)[0]]), lambda x: diversity(x)[1], a, eps=1e-4)
    same = np.repeat(a[:1], 3, axis=0)
    assert diversity(same)[0] == pytest.approx(2.0)  # each image has 2 identical partners
    assert diversity(a)[0] < diversity(same)[0]


def test_bad_channel_and_position_fail_with_a_sentence():
    with pytest.raises(errors.InvalidArgument, match="channel 5 does not exist in 't'.*5 channels"):
        Term("channel", "t", (0, 5)).check(ACT[:2])
    with pytest.raises(errors.InvalidArgument, match="outside 't'"):
        Term("neuron", "t", (0,), position=(6, 0)).check(ACT[:1])
    with pytest.raises(errors.InvalidArgument, match="4-D"):
        Term("neuron", "t", (0,)).check(np.zeros((1, 5)))
