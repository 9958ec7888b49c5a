"""Score-CAM, Ablation-CAM and Recipro-CAM against closed forms.

After relu4 the small CNN is linear (GAP -> Gemm), so the score of any edited activation A' is
b_k + sum_c W[k, c] mean(A'_c): ablating channel c removes W[k, c] mean(A_c), keeping one
position keeps W[k] . mean(A * M_ij).
"""

import numpy as np
import pytest
from factory import small_cnn
from onnx import numpy_helper

from inspector.imaging.render import resize_map
from inspector.methods import Target, get_method
from inspector.runtime.access import OrtModelAccess

LAYER = "relu4_out"


@pytest.fixture(scope="module")
def cnn():
    model = small_cnn(seed=3)
    params = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    x = np.random.default_rng(4).random((2, 3, 32, 32)).astype(np.float32)
    access = OrtModelAccess(model)
    out = access.forward(x, [LAYER])
    return model, access, x, out[LAYER].astype(np.float64), out["logits"], params["fc.weight"], params["fc.bias"]


def minmax(m):
    flat = m.reshape(len(m), -1)
    lo, hi = flat.min(1)[:, None], flat.max(1)[:, None]
    return ((flat - lo) / np.where(hi - lo > 0, hi - lo, 1)).reshape(m.shape)


def to_input(cam):
    return minmax(np.stack([resize_map(c, (32, 32)) for c in np.maximum(cam, 0)]))


def test_ablationcam_weights_are_relative_score_drops(cnn):
    _, access, x, a, logits, w, _ = cnn
    k = logits.argmax(1)
    weights = w[k] * a.mean((2, 3)) / logits[np.arange(2), k][:, None]
    exp = get_method("ablationcam").explain(access, x, Target(), batch_size=5)
    np.testing.assert_allclose(exp.heatmap, to_input((weights[:, :, None, None] * a).sum(1)), atol=1e-3)


def test_reciprocam_scores_each_kept_position(cnn):
    _, access, x, a, logits, w, b = cnn
    k = 7
    kernel = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    maps = np.zeros((2, 8, 8))
    for i in range(8):
        for j in range(8):
            m = np.zeros((10, 10))
            m[i:i + 3, j:j + 3] = kernel
            maps[:, i, j] = b[k] + (a * m[1:-1, 1:-1]).mean((2, 3)) @ w[k]
    exp = get_method("reciprocam").explain(access, x, Target(index=(k,)), batch_size=17)
    np.testing.assert_allclose(exp.layer_heatmap, minmax(maps - maps.min((1, 2), keepdims=True)), atol=1e-4)
    np.testing.assert_allclose(exp.heatmap, to_input(maps - maps.min((1, 2), keepdims=True)), atol=1e-4)


def test_scorecam_weights_are_softmax_of_masked_scores(cnn):
    _, access, x, a, logits, _, _ = cnn
    k = logits.argmax(1)
    scores = np.zeros((2, a.shape[1]))
    for c in range(a.shape[1]):
        masks = minmax(np.stack([resize_map(m, (32, 32)) for m in a[:, c]]))
        scores[:, c] = access.forward((x * masks[:, None]).astype(np.float32))["logits"][np.arange(2), k]
    weights = np.exp(scores - scores.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    exp = get_method("scorecam").explain(access, x, Target(), batch_size=6)
    np.testing.assert_allclose(exp.heatmap, to_input((weights[:, :, None, None] * a).sum(1)), atol=1e-3)


def test_layer_as_input_reproduces_and_overrides_the_forward(cnn):
    model, access, x, a, logits, _, b = cnn
    inside = "relu2a_out"  # inside a residual block: the bypass still needs the image input
    value = access.forward(x, [inside])[inside]
    replaced = access.forward_replacing(x, {inside: value}, ["logits"])["logits"]
    np.testing.assert_allclose(replaced, logits, rtol=1e-5)
    zeros = access.forward_replacing(x, {LAYER: np.zeros((2, 16, 8, 8), np.float32)}, ["logits"])["logits"]
    np.testing.assert_allclose(zeros, np.broadcast_to(b, (2, 10)), atol=1e-6)


class Cancelling(OrtModelAccess):
    """A real access whose caller goes away after a few batches."""

    def __init__(self, model, after):
        super().__init__(model)
        self.left = after

    def check_cancelled(self):
        self.left -= 1
        if self.left < 0:
            from inspector.errors import Cancelled
            raise Cancelled("gone")


@pytest.mark.parametrize("name", ["scorecam", "ablationcam", "occlusion", "rise", "smoothgrad"])
def test_perturbation_loops_stop_when_cancelled(cnn, name):
    from inspector.errors import Cancelled

    model, _, x, *_ = cnn
    with pytest.raises(Cancelled):
        get_method(name).explain(Cancelling(model, after=2), x, Target(), batch_size=2)


class Recording(OrtModelAccess):
    """A real access that records the batch size of every model call."""

    def __init__(self, model):
        super().__init__(model)
        self.sizes = []

    def forward(self, x, fetch=()):
        self.sizes.append(len(x))
        return super().forward(x, fetch)

    def backward(self, x, start, seed, wrt, policy="standard", fetch=()):
        self.sizes.append(len(x))
        return super().backward(x, start, seed, wrt, policy, fetch)


@pytest.mark.parametrize("name, params, calls", [
    ("scorecam", {}, 2 * 16 / 5), ("occlusion", {"window": 8, "stride": 8}, 2 * 16 / 5),
    ("rise", {"masks": 10}, 2 * 10 / 5), ("integrated_gradients", {"steps": 10}, 2 * 10 / 5),
    ("smoothgrad", {"samples": 10}, 2 * 10 / 5)])
def test_model_calls_are_batched(cnn, name, params, calls):
    model, _, x, *_ = cnn
    access = Recording(model)
    get_method(name).explain(access, x, Target(), batch_size=5, **params)
    assert max(access.sizes) <= 5
    assert sum(s == 5 for s in access.sizes) >= int(calls) - 1  # full batches, not one call per input
