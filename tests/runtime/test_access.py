"""OrtModelAccess: forward with exposed tensors, backward, and the in-graph top-1 seed."""

import numpy as np
import onnxruntime as ort
from factory import small_cnn

from inspector.runtime.access import OrtModelAccess


def test_forward_fetches_intermediates_and_outputs():
    model = small_cnn(seed=5)
    access = OrtModelAccess(model)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    out = access.forward(x, ["relu2_out"])
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(out["logits"], plain.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)
    assert out["relu2_out"].shape == (2, 8, 16, 16) and (out["relu2_out"] >= 0).all()


def test_top1_seed_in_graph_equals_host_seed():
    access = OrtModelAccess(small_cnn(seed=0, classes=4))
    x = np.random.default_rng(1).standard_normal((8, 3, 32, 32)).astype(np.float32)
    x *= np.linspace(0.1, 30, 8, dtype=np.float32)[:, None, None, None]  # rows with different top-1
    grads, fetched = access.backward_top1(x, "logits", ["relu4_out", "input"], fetch=["relu4_out"])
    plain = access.forward(x, ["relu4_out"])
    np.testing.assert_array_equal(fetched["logits"], plain["logits"])
    np.testing.assert_array_equal(fetched["relu4_out"], plain["relu4_out"])
    seed = np.eye(4, dtype=np.float32)[plain["logits"].argmax(axis=1)]
    ref = access.backward(x, "logits", seed, ["relu4_out", "input"])
    for name in ("relu4_out", "input"):
        np.testing.assert_array_equal(grads[name], ref[name])
    assert len({int(i) for i in plain["logits"].argmax(axis=1)}) > 1  # rows really differ
