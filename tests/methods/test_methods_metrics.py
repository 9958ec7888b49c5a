"""Faithfulness metrics on the patch model, where the answer is known: class 0's evidence is exactly
the top-left 8x8 block (the red patch and the detector's receptive field around it)."""

import numpy as np
import pytest
from methods_models import RED_BOX, patch_image, patch_model

from inspector.errors import InvalidArgument
from inspector.methods import Explanation, Target, evaluate, get_method
from inspector.methods.metrics import impute
from inspector.runtime.access import OrtModelAccess

T0 = Target(index=(0,))


def given(heat):
    return Explanation("given", heat.astype(np.float32), None, None, [], [], np.zeros(len(heat)), None, {}, {})


@pytest.fixture(scope="module")
def case():
    access, x = OrtModelAccess(patch_model()), patch_image(2)
    perfect = np.zeros((2, 16, 16))
    perfect[:, :8, :8] = 1.0
    score = access.forward(x)["logits"][:, 0]
    return access, x, perfect, score


def test_deletion_and_insertion_curves(case):
    access, x, perfect, score = case
    good = evaluate(access, x, given(perfect), ["deletion", "insertion"], T0, steps=16)
    bad = evaluate(access, x, given(1 - perfect), ["deletion", "insertion"], T0, steps=16)
    # removing the 64 evidence pixels (stage 4 of 16) leaves no evidence: logit 0 exactly
    np.testing.assert_allclose(good["deletion_curve"][:, 0], score, rtol=1e-6)
    np.testing.assert_allclose(good["deletion_curve"][:, 4:], 0.0, atol=1e-6)
    # removing the other 192 pixels first (stages 0..12) leaves the score untouched
    np.testing.assert_allclose(bad["deletion_curve"][:, :13], np.repeat(score[:, None], 13, 1), rtol=1e-5)
    # inserting the evidence block into the blurred image restores the full score from stage 4 on
    np.testing.assert_allclose(good["insertion_curve"][:, 4:], np.repeat(score[:, None], 13, 1), rtol=1e-5)
    assert np.all(good["deletion"] < bad["deletion"]) and np.all(good["insertion"] > bad["insertion"])
    curve = good["deletion_curve"]
    np.testing.assert_allclose(good["deletion"], ((curve[:, 1:] + curve[:, :-1]) / 2).sum(1) / 16, rtol=1e-5)


def test_gradcam_beats_a_random_map(case):
    access, x, _, _ = case
    cam = get_method("gradcam").explain(access, x, T0)
    noise = np.random.default_rng(0).random((2, 16, 16))
    ours = evaluate(access, x, cam, ["deletion", "insertion"], T0)
    rand = evaluate(access, x, given(noise), ["deletion", "insertion"], T0)
    assert np.all(ours["deletion"] < rand["deletion"]) and np.all(ours["insertion"] > rand["insertion"])


def test_confidence_keeping_only_highlighted_pixels(case):
    access, x, perfect, score = case
    ones = evaluate(access, x, given(np.ones((2, 16, 16))), ["confidence"], T0)
    np.testing.assert_allclose(ones["confidence_change"], 0.0, atol=1e-6)
    assert np.all(ones["confidence_drop"] == 0) and np.all(ones["confidence_increase"] == 0)
    kept = evaluate(access, x, given(perfect), ["confidence"], T0)
    np.testing.assert_allclose(kept["confidence_change"], 0.0, atol=1e-5)  # the evidence block is all it needs
    none = evaluate(access, x, given(1 - perfect), ["confidence"], T0)
    np.testing.assert_allclose(none["confidence_change"], -score, rtol=1e-6)
    np.testing.assert_allclose(none["confidence_drop"], 100.0, rtol=1e-6)


def test_pointing_game(case):
    access, x, perfect, _ = case
    heat = np.zeros((2, 16, 16))
    heat[0, 3, 3] = 1.0
    heat[1, 12, 12] = 1.0
    got = evaluate(access, x, given(heat), ["pointing_game"], T0, box=RED_BOX)
    np.testing.assert_array_equal(got["pointing_game"], [1.0, 0.0])
    got = evaluate(access, x, given(heat), ["pointing_game"], T0, box=[RED_BOX, (10, 10, 14, 14)])
    np.testing.assert_array_equal(got["pointing_game"], [1.0, 1.0])
    near = evaluate(access, x, given(heat), ["pointing_game"], T0, box=(0, 0, 11, 11), tolerance=2)
    np.testing.assert_array_equal(near["pointing_game"], [1.0, 1.0])
    with pytest.raises(InvalidArgument, match="box"):
        evaluate(access, x, given(heat), ["pointing_game"], T0)


def test_road_separates_good_from_bad_maps(case):
    access, x, perfect, _ = case
    good = evaluate(access, x, given(perfect + 0.01 * np.random.default_rng(1).random((2, 16, 16))), ["road"], T0)
    bad = evaluate(access, x, given(1 - perfect), ["road"], T0)
    assert np.all(good["road_morf"] < good["road_lerf"]) and np.all(good["road"] > 0)
    assert np.all(bad["road"] < 0)


def test_noisy_linear_imputer_recovers_a_linear_ramp():
    yy, xx = np.mgrid[0:12, 0:12]
    ramp = np.stack([0.1 * yy + 0.05 * xx] * 3)[None].astype(np.float32)
    removed = np.zeros((1, 12, 12), bool)
    removed[0, 3:8, 4:9] = True
    filled = impute(ramp, removed, 0.0, np.random.default_rng(0), "NCHW")
    np.testing.assert_allclose(filled, ramp, atol=1e-3)
    noisy = impute(ramp, removed, 0.1, np.random.default_rng(0), "NCHW")
    assert np.array_equal(noisy[:, :, ~removed[0]], ramp[:, :, ~removed[0]])
    assert 0.05 < np.std(noisy - filled) * np.sqrt(removed.size / removed.sum()) < 0.2


def test_bad_requests(case):
    access, x, perfect, _ = case
    with pytest.raises(InvalidArgument, match="deletion, insertion"):
        evaluate(access, x, given(perfect), ["auc"], T0)
    with pytest.raises(InvalidArgument, match="parameters"):
        evaluate(access, x, given(perfect), ["deletion"], T0, stepz=3)
    with pytest.raises(InvalidArgument, match="heatmap shape"):
        evaluate(access, x, given(perfect[:, :8]), ["deletion"], T0)
