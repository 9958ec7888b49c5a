"""With a default (top-1) target, gradient methods get outputs, activations and gradients from ONE
model run (the top-1 seed is computed inside the gradient graph)."""

import numpy as np
import pytest
from factory import small_cnn

from inspector.methods import get_method
from inspector.methods.base import Target
from inspector.runtime.access import OrtModelAccess


class Counting(OrtModelAccess):
    """A real access that names every model run it makes."""

    def __init__(self, model):
        super().__init__(model)
        self.calls = []

    def forward(self, x, fetch=()):
        self.calls.append("forward")
        return super().forward(x, fetch)

    def backward(self, x, start, seed, wrt, policy="standard", fetch=()):
        self.calls.append(f"backward:{policy}")
        return super().backward(x, start, seed, wrt, policy, fetch)

    def backward_top1(self, x, start, wrt, policy="standard", fetch=()):
        self.calls.append("backward_top1")
        return super().backward_top1(x, start, wrt, policy, fetch)


@pytest.mark.parametrize("method, runs", [
    ("gradcam", ["backward_top1"]), ("layercam", ["backward_top1"]), ("saliency", ["backward_top1"]),
    ("inputxgradient", ["backward_top1"]),
    ("guided_gradcam", ["backward_top1", "backward:guided_backprop"])])
def test_default_target_costs_one_run(method, runs):
    access = Counting(small_cnn(seed=81))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    exp = get_method(method).explain(access, x, Target(), score_after=False)
    assert access.calls == runs
    explicit = Counting(small_cnn(seed=81))  # the same maps when the class is given explicitly
    top = access.forward(x)["logits"].argmax(axis=1)
    for i, k in enumerate(top):
        again = get_method(method).explain(explicit, x[i:i + 1], Target(index=(int(k),)), score_after=False)
        np.testing.assert_allclose(again.heatmap[0], exp.heatmap[i], atol=1e-6)
