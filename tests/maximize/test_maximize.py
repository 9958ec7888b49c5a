"""The whole loop on real onnxruntime sessions: growth, known answers, determinism, stopping."""

import numpy as np
import pytest
from edge_model import edge_kernels, edge_model
from factory import CNNBuilder, small_cnn

from inspector import errors
from inspector.maximize import MaximizeConfig, Term, maximize, run_to_end
from inspector.maximize.loop import class_scores
from inspector.maximize.param import FourierImage
from inspector.maximize.pullback import InputPullback
from inspector.maximize.warp import Resample, Robustness
from inspector.runtime.access import OrtModelAccess

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def to_input(rgb: np.ndarray) -> np.ndarray:
    """ImageNet mean/std, NCHW: the preprocessing most exported CNNs expect."""
    return ((rgb - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float32)


@pytest.fixture(scope="module")
def cnn():
    return OrtModelAccess(small_cnn())


@pytest.fixture(scope="module")
def edges():
    return OrtModelAccess(edge_model())


def run(access, layer, channels, size=(32, 32), **cfg):
    return run_to_end(maximize(access, layer, channels, MaximizeConfig(**cfg), to_input, size))


def bias_free_cnn():
    """conv-relu-pool-conv-relu without biases: units start near zero on a grey image."""
    b = CNNBuilder((1, 3, 32, 32), seed=1)
    x = b.maxpool(b.relu(b.conv(b.input_name, 8, bias=False, name="c1"), name="r1"), name="p1")
    x = b.relu(b.conv(x, 16, bias=False, name="c2"), name="r2")
    return b.build(b.flatten(b.gap(x)))


def test_channel_objective_grows_at_least_tenfold():
    res = run(OrtModelAccess(bias_free_cnn()), "r2_out", range(16), steps=64)
    assert res.initial_objective.min() == 0  # channel 6 starts silent: redirection wakes it
    factor = res.final_objective / np.maximum(res.initial_objective, 1e-12)
    print("final/initial per channel:", np.round(factor, 1))
    assert np.all(factor >= 10), factor
    assert np.all(np.diff(res.objective.mean(1)[::16]) > 0)  # it climbs throughout


def test_redirected_relu_gradients_wake_a_silent_unit():
    access = OrtModelAccess(bias_free_cnn())
    silent = run(access, "r2_out", [6], steps=32, redirect_steps=0)
    woken = run(access, "r2_out", [6], steps=32)
    assert silent.initial_objective[0] == 0 and silent.final_objective[0] == 0
    assert woken.final_objective[0] > 0.1


def test_inputs_reproduce_the_final_objective(cnn):
    res = run(cnn, "relu3b_out", range(8), steps=16)
    assert res.objective.shape == (16, 8) and res.images.shape == (8, 32, 32, 3)
    act = cnn.forward(res.inputs, fetch=["relu3b_out"])["relu3b_out"]
    np.testing.assert_allclose(act.mean((2, 3))[range(8), range(8)], res.final_objective, rtol=1e-4)
    np.testing.assert_allclose(res.inputs, to_input(res.images / 255.0), atol=0.6 / 255 / 0.224)


def test_the_whole_chain_gradient_matches_finite_differences(cnn):
    """d objective / d spectrum through model, preprocessing, one random warp and the FFT image."""
    size, layer = (32, 32), "relu2_out"
    param, pull = FourierImage(size), InputPullback(to_input, size)
    warp = Resample(Robustness().sample(np.random.default_rng(0), size, size), size)
    p = param.init(np.random.default_rng(1), 2, sd=0.3)
    seed = np.zeros((2, 8, 16, 16), np.float32)
    seed[0, 3], seed[1, 5] = 1 / 256, 1 / 256  # channel means of channels 3 and 5

    def f(q):
        a = cnn.forward(to_input(warp(param.rgb(q))), fetch=[layer])[layer]
        return float((a.astype(np.float64) * seed).sum())

    rgb = param.rgb(p)
    g = cnn.backward(to_input(warp(rgb)), start=layer, seed=seed, wrt=["input"])["input"]
    grad = param.pullback(p, warp.adjoint(pull(g)), rgb)
    for k in range(3):  # small steps: larger ones cross ReLU and max-pool kinks
        d = np.random.default_rng(2 + k).standard_normal(p.shape).astype(np.float32)
        numeric = (f(p + 1e-4 * d) - f(p - 1e-4 * d)) / 2e-4
        assert float((grad * d).sum()) == pytest.approx(numeric, rel=2e-2, abs=1e-3)


def _pattern(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean |horizontal| and |vertical| change of red minus green, per image."""
    d = images[..., 0].astype(float) - images[..., 1].astype(float)
    return np.abs(np.diff(d, axis=2)).mean((1, 2)), np.abs(np.diff(d, axis=1)).mean((1, 2))


def _response(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Mean Relu(correlation with kernel) over valid positions, on display RGB in [0, 1]."""
    x = images.astype(np.float32) / 255.0 - 0.5
    h, w = x.shape[1] - 4, x.shape[2] - 4
    out = sum(x[:, i:i + h, j:j + w] @ kernel[:, i, j] for i in range(5) for j in range(5))
    return np.maximum(out, 0).mean((1, 2))


def test_edge_filters_draw_their_edges(edges):
    res = run(edges, "edge", [0, 1], size=(40, 40), steps=96)
    gx, gy = _pattern(res.images)
    assert gx[0] > 1.5 * gy[0] and gy[1] > 1.5 * gx[1], (gx, gy)  # vertical vs horizontal
    k = edge_kernels()
    own = _response(res.images, k[0])[0], _response(res.images, k[1])[1]
    crossed = _response(res.images, k[1])[0], _response(res.images, k[0])[1]
    assert own[0] > 1.6 * crossed[0] and own[1] > 1.6 * crossed[1], (own, crossed)
    assert np.all(res.final_objective > 10 * res.initial_objective)


def test_edge_neurons_draw_one_edge_through_the_center(edges):
    res = run(edges, "edge", [0, 1], size=(40, 40), objective="neuron", steps=64)
    d = (res.images[..., 0].astype(float) - res.images[..., 1]) / 255.0  # red minus green
    left, right = d[0, 14:27, 10:20].mean(), d[0, 14:27, 21:31].mean()
    top, bottom = d[1, 10:20, 14:27].mean(), d[1, 21:31, 14:27].mean()
    assert left > right + 0.25 and top > bottom + 0.25, (left, right, top, bottom)
    assert abs(d[0, 10:20, 14:27].mean() - d[0, 21:31, 14:27].mean()) < 0.1  # no horizontal edge
    assert np.all(res.final_objective > 10 * np.maximum(res.initial_objective, 1e-3))


def test_same_seed_same_pictures_other_seed_other_pictures(edges):
    a = run(edges, "edge", [0, 1], steps=8, seed=3)
    b = run(edges, "edge", [0, 1], steps=8, seed=3)
    c = run(edges, "edge", [0, 1], steps=8, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.objective, b.objective)
    assert np.abs(a.inputs - c.inputs).mean() > 1e-3


class Counting(OrtModelAccess):
    """A real OrtModelAccess that counts backward calls and can be cancelled after k steps."""

    def __init__(self, model, cancel_after=None):
        super().__init__(model)
        self.calls, self.checks, self.cancel_after = 0, 0, cancel_after

    def backward(self, *args, **kwargs):
        self.calls += 1
        return super().backward(*args, **kwargs)

    def check_cancelled(self):
        self.checks += 1
        if self.cancel_after is not None and self.checks > self.cancel_after:
            raise errors.Cancelled("the caller went away")


def test_closing_the_generator_stops_the_work():
    access = Counting(edge_model())
    gen = maximize(access, "edge", [0], MaximizeConfig(steps=50), to_input, (24, 24))
    steps = [next(gen).step for _ in range(3)]
    gen.close()
    assert steps == [0, 1, 2] and access.calls == 3
    with pytest.raises(StopIteration):
        next(gen)
    assert access.calls == 3


def test_cancellation_raises_and_stops_after_the_current_step():
    access = Counting(edge_model(), cancel_after=4)
    gen = maximize(access, "edge", [0], MaximizeConfig(steps=50), to_input, (24, 24))
    with pytest.raises(errors.Cancelled):
        run_to_end(gen)
    assert access.calls == 4


def test_progress_previews_every_k_steps(edges):
    gen = maximize(edges, "edge", [0, 1], MaximizeConfig(steps=6, preview_every=3), to_input, (24, 24))
    seen = [(p.step, p.image is not None, p.objective.shape) for p in gen]
    assert seen == [(0, False, (2,)), (1, False, (2,)), (2, True, (2,)),
                    (3, False, (2,)), (4, False, (2,)), (5, True, (2,))]


@pytest.mark.parametrize("objective", ["logit", "probability"])
def test_class_objectives_raise_every_class_score(cnn, objective):
    res = run(cnn, "", range(10), objective=objective, steps=48)
    logits = cnn.forward(res.inputs)["logits"].astype(np.float64)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    chosen = (p if objective == "probability" else logits)[range(10), range(10)]
    np.testing.assert_allclose(chosen, res.final_objective, rtol=1e-4, atol=1e-6)
    assert np.all(res.final_objective > res.initial_objective)
    if objective == "logit":
        assert np.mean(res.final_objective - res.initial_objective) > 0.5
    else:
        assert np.mean(res.final_objective / res.initial_objective) > 1.5


def test_layer_objective_and_weighted_terms_with_pixels_and_priors(cnn):
    extra = (Term("channel", "relu1_out", (3,), weight=0.5),)
    res = run(cnn, "relu2_out", [0, 0], objective="layer", steps=32, parameterization="pixel",
              tv=1.0, l2=0.1, blur_every=4, terms=extra, diversity=0.05)
    acts = cnn.forward(res.inputs, fetch=["relu2_out", "relu1_out"])
    want = (acts["relu2_out"] ** 2).reshape(2, -1).mean(1) + 0.5 * acts["relu1_out"][:, 3].mean((1, 2))
    np.testing.assert_allclose(res.final_objective, want, rtol=1e-4)
    assert np.all(res.final_objective > 2 * res.initial_objective)


def test_user_mistakes_fail_before_the_first_step(cnn):
    with pytest.raises(errors.InvalidArgument, match="'nope' is not a tensor"):
        maximize(cnn, "nope", [0], MaximizeConfig(), to_input, (32, 32))
    with pytest.raises(errors.InvalidArgument, match="channel 8 does not exist.*8 channels"):
        maximize(cnn, "relu3b_out", [0, 8], MaximizeConfig(), to_input, (32, 32))
    with pytest.raises(errors.InvalidArgument, match="objective must be one of"):
        MaximizeConfig(objective="dream")
    with pytest.raises(errors.InvalidArgument, match="steps"):
        MaximizeConfig(steps=0)
    with pytest.raises(errors.InvalidArgument, match="pad must be a whole number"):
        MaximizeConfig(pad=2.5)
    cfg = MaximizeConfig(steps=12.0, jitter=[4.0, 2.0], position=[3.0, 1.0])  # JSON numbers
    assert (cfg.steps, cfg.jitter, cfg.position) == (12, (4, 2), (3, 1))


def test_class_objectives_read_the_logits_under_a_final_softmax():
    b = CNNBuilder((1, 3, 16, 16), seed=2)
    logits = b.gemm(b.flatten(b.gap(b.relu(b.conv(b.input_name, 4)))), 5, name="fc")
    access = OrtModelAccess(b.build(b.node("Softmax", [logits], axis=1, name="prob"),
                                    output_names=["probs"]))
    assert class_scores(access) == "fc_out"
    res = run(access, "", [1, 3], size=(16, 16), objective="probability", steps=8)
    probs = access.forward(res.inputs)["probs"]
    np.testing.assert_allclose(probs[[0, 1], [1, 3]], res.final_objective, rtol=1e-4)


def test_extra_terms_may_come_as_json_dicts():
    cfg = MaximizeConfig(terms=({"kind": "channel", "layer": "relu1_out", "channels": 3, "weight": 0.5},))
    assert cfg.terms == (Term("channel", "relu1_out", (3,), 0.5),)
    with pytest.raises(errors.InvalidArgument, match="each extra term needs kind"):
        MaximizeConfig(terms=({"layer": "relu1_out"},))


def test_a_model_with_batch_fixed_to_one_still_optimizes_a_batch(cnn):
    fixed = OrtModelAccess(small_cnn(batch_dim=1))
    a = run(fixed, "relu3b_out", [1, 3, 4], steps=6)
    b = run(cnn, "relu3b_out", [1, 3, 4], steps=6)
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.inputs, b.inputs, rtol=1e-3, atol=1e-4)
