"""Gradients, Explain and Evaluate through a real server, checked against independent references."""

import io

import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from factory import CNNBuilder, small_cnn
from PIL import Image

METHOD_NAMES = {"cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam",
                "eigengradcam", "scorecam", "ablationcam", "kpcacam", "fem", "reciprocam", "saliency",
                "inputxgradient", "smoothgrad", "integrated_gradients", "guided_backprop",
                "guided_gradcam", "occlusion", "rise", "attention_rollout"}


def _lrn_model() -> onnx.ModelProto:
    """A model onnxruntime runs but the engine cannot differentiate (LRN has no rule)."""
    b = CNNBuilder((1, 3, 16, 16), seed=3)
    x = b.relu(b.conv(b.input_name, 4, name="c1"), name="r1")
    x = b._same(x, b.node("LRN", [x], name="lrn", size=3))
    x = b.relu(b.conv(x, 6, name="c2"), name="r2")
    return b.build(b.gemm(b.flatten(b.gap(x)), 3, name="fc"), output_names=["logits"])


def _smooth_model() -> onnx.ModelProto:
    """Tanh/Softplus and average pooling: no kinks, so finite differences are accurate."""
    b = CNNBuilder((1, 3, 16, 16), seed=4)
    x = b.act("Tanh", b.bn(b.conv(b.input_name, 6, name="s1")))
    x = b.avgpool(x)
    y = b.act("Softplus", b.conv(x, 6, name="s2"))
    x = b.act("Sigmoid", b.add(x, y))
    x = b.act("Tanh", b.conv(x, 8, stride=2, group=2, name="s3"))
    return b.build(b.gemm(b.flatten(b.gap(x)), 5, name="fc"), output_names=["logits"])


@pytest.fixture(scope="module")
def models(server):
    from inspector_client import InspectorClient

    cnn = small_cnn(seed=31)
    with InspectorClient(server.address) as c:
        c.load_model(cnn.SerializeToString(), name="grad-cnn")
        c.load_model(_lrn_model().SerializeToString(), name="lrn-cnn")
        c.load_model(_smooth_model().SerializeToString(), name="smooth-cnn")
    sess = ort.InferenceSession(cnn.SerializeToString(), providers=["CPUExecutionProvider"])
    return cnn, lambda x: sess.run(None, {"input": x})[0]


def test_input_gradient_matches_finite_differences(client, models):
    sess = ort.InferenceSession(_smooth_model().SerializeToString(), providers=["CPUExecutionProvider"])

    def f(x):
        return sess.run(None, {"input": x})[0].astype(np.float64)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    grad = client.gradients("smooth-cnn", x, target=3)["input"]
    assert grad.shape == x.shape
    for i in range(2):
        for _ in range(3):
            v = rng.standard_normal(x.shape[1:]).astype(np.float32)
            eps = 1e-2
            xp, xm = x.copy(), x.copy()
            xp[i] += eps * v
            xm[i] -= eps * v
            fd = (f(xp)[i, 3] - f(xm)[i, 3]) / (2 * eps)
            assert np.dot(grad[i].ravel().astype(np.float64), v.ravel()) == pytest.approx(fd, rel=5e-3, abs=2e-5)  # float32 forward, O(eps^2)


def test_default_target_is_top1_and_intermediate_wrt(client, models):
    _, f = models
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    top = int(np.argmax(f(x)[0]))
    default = client.gradients("grad-cnn", x)["input"]
    explicit = client.gradients("grad-cnn", x, target=top)["input"]
    np.testing.assert_array_equal(default, explicit)
    # d logit_k / d(flatten output) of a Gemm head is W[k]; GAP spreads it over H*W
    g = client.gradients("grad-cnn", x, wrt=["flatten_out", "relu4_out"], target=top)
    w = onnx.numpy_helper.to_array(next(i for i in models[0].graph.initializer if i.name == "fc.weight"))
    np.testing.assert_allclose(g["flatten_out"][0], w[top], rtol=1e-6)
    hw = g["relu4_out"].shape[2] * g["relu4_out"].shape[3]
    np.testing.assert_allclose(g["relu4_out"][0], np.broadcast_to(w[top][:, None, None] / hw, g["relu4_out"][0].shape),
                               rtol=1e-5)


def test_seed_array_and_channel_targets(client, models):
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    seed = np.zeros((1, 10), np.float32)
    seed[0, 2], seed[0, 5] = 1.0, -2.0
    by_seed = client.gradients("grad-cnn", x, target=seed)["input"]
    g2 = client.gradients("grad-cnn", x, target=2)["input"]
    g5 = client.gradients("grad-cnn", x, target=5)["input"]
    np.testing.assert_allclose(by_seed, g2 - 2 * g5, rtol=1e-4, atol=1e-6)
    # a channel of an intermediate tensor: d sum(relu2[c]) / d relu1 is nonzero only where it can reach
    g = client.gradients("grad-cnn", x, wrt=["pool1_out"], target={"tensor": "relu2_out", "channel": 1})
    assert np.abs(g["pool1_out"]).sum() > 0


def test_gradcam_equals_its_definition(client, models):
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    exp = client.explain("grad-cnn", x, method="gradcam", target=4, layer="relu4_out")
    assert exp.layer == ["relu4_out"] and exp.heatmap.shape == (2, 32, 32)
    act = client.feature_maps("grad-cnn", x, ["relu4_out"])["relu4_out"]
    grad = client.gradients("grad-cnn", x, wrt=["relu4_out"], target=4)["relu4_out"]
    cam = np.maximum((grad.mean(axis=(2, 3))[:, :, None, None] * act).sum(axis=1), 0)
    lo, hi = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(exp.layer_heatmap, (cam - lo) / np.maximum(hi - lo, 1e-12), atol=1e-5)
    assert 0 <= exp.heatmap.min() and exp.heatmap.max() <= 1
    for png in exp.overlay_png:
        assert Image.open(io.BytesIO(png)).size == (32, 32)


def test_every_method_runs_through_the_server(client, models):
    names = {m["name"] for m in client.methods()}
    assert names >= METHOD_NAMES
    x = np.random.default_rng(4).standard_normal((1, 3, 32, 32)).astype(np.float32)
    fast = {"scorecam": {"batch_size": 16}, "integrated_gradients": {"steps": 8},
            "smoothgrad": {"samples": 4}, "rise": {"masks": 64}, "occlusion": {"window": 8, "stride": 8}}
    for method in sorted(METHOD_NAMES - {"attention_rollout"}):
        exp = client.explain("grad-cnn", x, method=method, **fast.get(method, {}))
        assert exp.heatmap.shape == (1, 32, 32), method
        assert np.isfinite(exp.heatmap).all() and exp.heatmap.max() <= 1.0 + 1e-6, method


def test_not_differentiable_model(client, models):
    info = client.model_info("lrn-cnn")
    assert not info.differentiable and any("LRN" in op for op in info.blocking_ops)
    x = np.random.default_rng(5).standard_normal((1, 3, 16, 16)).astype(np.float32)
    # Grad-CAM after the LRN differentiates only the head: it works
    assert client.explain("lrn-cnn", x, method="gradcam", layer="r2_out").heatmap.shape == (1, 16, 16)
    with pytest.raises(grpc.RpcError) as err:  # saliency must cross the LRN
        client.explain("lrn-cnn", x, method="saliency")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "LRN" in err.value.details() and "lrn" in err.value.details()
    exp = client.explain("lrn-cnn", x, method="scorecam", layer="r2_out")  # gradient-free still works
    assert exp.heatmap.shape == (1, 16, 16)
    assert client.explain("lrn-cnn", x, method="occlusion", window=4, stride=4).heatmap.shape == (1, 16, 16)


def test_bad_method_and_params_are_invalid_argument(client, models):
    x = np.zeros((1, 3, 32, 32), np.float32)
    for kwargs in ({"method": "gradcamm"}, {"method": "gradcam", "stepz": 3}, {"method": "gradcam", "layer": "nope"}):
        with pytest.raises(grpc.RpcError) as err:
            client.explain("grad-cnn", x, **kwargs)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        client.gradients("grad-cnn", x, policy="sideways")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sideways" in err.value.details()


def test_evaluate_metrics(client, models):
    x = np.random.default_rng(6).standard_normal((1, 3, 32, 32)).astype(np.float32)
    exp = client.explain("grad-cnn", x, method="gradcam")
    metrics = client.evaluate("grad-cnn", x, exp, metrics=["deletion", "insertion"])
    assert {"deletion", "insertion"} <= set(metrics)
    for name in ("deletion", "insertion"):
        auc, curve = metrics[name], metrics[f"{name}_curve"]
        assert auc.shape == (1,) and np.isfinite(auc).all()
        assert curve.min() - 1e-6 <= auc[0] <= curve.max() + 1e-6  # an area under a [0, 1] curve


def test_images_are_preprocessed_by_the_stored_spec(client, server, models):
    cnn, f = models
    spec = {"resize": [32, 32], "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}
    client.load_model(cnn.SerializeToString(), name="grad-cnn", preprocess=spec)
    rgb = (np.random.default_rng(7).random((40, 50, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    resized = np.asarray(Image.fromarray(rgb).resize((32, 32), Image.Resampling.BILINEAR), np.float32) / 255
    x = ((resized - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.3])).astype(np.float32)
    x = x.transpose(2, 0, 1)[None]
    out = client.infer("grad-cnn", buf.getvalue())["logits"]
    np.testing.assert_allclose(out, f(x), rtol=1e-4, atol=1e-4)


def test_default_target_single_run_equals_explicit_top1(client, models):
    _, f = models
    x = np.random.default_rng(8).standard_normal((2, 3, 32, 32)).astype(np.float32)
    tops = f(x).argmax(axis=1)
    for method in ("gradcam", "saliency"):
        default = client.explain("grad-cnn", x, method=method)  # top-1 seeded inside the graph
        for i, k in enumerate(tops):
            explicit = client.explain("grad-cnn", x[i:i + 1], method=method, target=int(k))
            np.testing.assert_allclose(default.heatmap[i], explicit.heatmap[0], atol=1e-6)
            assert default.target[i] == f"logits[{k}]"
    quick = client.explain("grad-cnn", x, method="gradcam", score_after=False)
    assert quick.score_after is None and len(quick.score) == 2
