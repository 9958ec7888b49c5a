"""Infer, feature maps and weights through a real server, checked against plain onnxruntime."""

import io

import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from factory import small_cnn
from PIL import Image


def _truncated_run(model: onnx.ModelProto, names, x):
    """Plain onnxruntime on the original graph with the tensors appended as outputs (reference)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in names:
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x}), strict=True))


@pytest.fixture(scope="module")
def cnn(server):
    from inspector_client import InspectorClient

    model = small_cnn(seed=21)
    with InspectorClient(server.address) as c:
        c.load_model(model.SerializeToString(), name="features-cnn")
    return model


def test_infer_equals_plain_onnxruntime(client, cnn):
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    out = client.infer("features-cnn", x)
    ref = _truncated_run(cnn, [], x)["logits"]
    np.testing.assert_allclose(out["logits"], ref, rtol=1e-5, atol=1e-5)


def test_feature_maps_equal_reference_for_every_selector_kind(client, cnn):
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    maps = client.feature_maps("features-cnn", x, ["relu1_out", "conv2a", "Concat"])
    assert list(maps) == ["relu1_out", "conv2a_out", "cat3_out"]
    ref = _truncated_run(cnn, list(maps), x)
    for name, value in maps.items():
        assert value.dtype == np.float32 and value.shape == ref[name].shape
        np.testing.assert_allclose(value, ref[name], rtol=1e-5, atol=1e-5)


def test_all_layers_and_float16(client, cnn):
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    maps = client.feature_maps("features-cnn", x, ["all"])
    produced = [o for n in cnn.graph.node for o in n.output]
    assert set(maps) == set(produced)
    half = client.feature_maps("features-cnn", x, ["relu2_out"], float16=True)["relu2_out"]
    assert half.dtype == np.float16
    # fp16 keeps ~11 bits; fusions differ between selections, so compare within half an fp16 ulp
    np.testing.assert_allclose(half.astype(np.float32), maps["relu2_out"], rtol=1e-3, atol=1e-3)


def test_unknown_layer_is_invalid_argument_naming_it(client, cnn):
    x = np.zeros((1, 3, 32, 32), np.float32)
    with pytest.raises(grpc.RpcError) as err:
        client.feature_maps("features-cnn", x, ["relu_1_out"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "relu_1_out" in err.value.details()


def test_wrong_input_shape_and_dtype_are_invalid_argument(client, cnn):
    for bad in (np.zeros((1, 3, 31, 32), np.float32), np.zeros((1, 3, 32, 32), np.float64),
                np.zeros((3, 32, 32), np.float32)):
        with pytest.raises(grpc.RpcError) as err:
            client.infer("features-cnn", bad)
        details = err.value.details()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, details
        assert "'input'" in details  # names the bad input
        assert "onnxruntime_src" not in details and ".cc:" not in details and "/tmp/" not in details
    # the server still serves
    assert client.infer("features-cnn", np.zeros((1, 3, 32, 32), np.float32))["logits"].shape == (1, 10)


def test_png_grids_and_stats(client, cnn):
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    res = client.feature_map_results("features-cnn", x, ["relu1_out"], raw=True, png=True, stats=True)
    t = res.tensors["relu1_out"]
    assert len(res.pngs["relu1_out"]) == 2
    for i in range(2):
        img = Image.open(io.BytesIO(res.pngs["relu1_out"][i]))
        assert img.size[0] > 32 and img.size[1] > 32
    stats = res.stats["relu1_out"]
    per_channel = t.transpose(1, 0, 2, 3).reshape(8, -1)
    np.testing.assert_allclose(stats["mean"], per_channel.mean(1), rtol=1e-5)
    np.testing.assert_allclose(stats["max"], per_channel.max(1), rtol=1e-6)
    np.testing.assert_allclose(stats["zero_fraction"], (per_channel == 0).mean(1))
    pngs = client.render_feature_maps("features-cnn", x, ["relu1_out"], image=1, top_k=4)
    assert list(pngs) == ["relu1_out"]


def test_large_result_streams_below_message_limit(client, cnn):
    model = small_cnn(seed=22, size=96)
    client.load_model(model.SerializeToString(), name="big-cnn")
    x = np.random.default_rng(4).standard_normal((16, 3, 96, 96)).astype(np.float32)
    maps = client.feature_maps("big-cnn", x, ["relu1_out", "conv1"])
    assert maps["relu1_out"].nbytes > 4 << 20  # one tensor alone is above the message limit
    ref = _truncated_run(model, ["relu1_out", "conv1_out"], x)
    np.testing.assert_allclose(maps["relu1_out"], ref["relu1_out"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(maps["conv1_out"], ref["conv1_out"], rtol=1e-5, atol=1e-5)


def test_weights_equal_initializers(client, cnn):
    w = client.weights("features-cnn")
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in cnn.graph.initializer}
    for name in ("conv1.weight", "conv1.bias", "dw3.weight", "fc.weight", "fc.bias"):
        np.testing.assert_array_equal(w[name], inits[name])
    assert "bn" not in " ".join(w)  # BatchNormalization parameters are not conv/gemm weights
    only = client.weights("features-cnn", ["conv2a"])
    assert set(only) == {"conv2a.weight", "conv2a.bias"}
    pngs = client.render_weights("features-cnn", ["conv1"])
    assert Image.open(io.BytesIO(pngs["conv1.weight"])).size[0] >= 24
    stats = client.weight_stats("features-cnn", ["conv1"])["conv1.weight"]
    np.testing.assert_allclose(stats["l2_norm"], np.linalg.norm(inits["conv1.weight"].reshape(8, -1), axis=1),
                               rtol=1e-6)


def test_second_identical_request_builds_nothing(client, server, cnn):
    x = np.random.default_rng(9).standard_normal((1, 3, 32, 32)).astype(np.float32)
    client.feature_maps("features-cnn", x, ["conv2a", "relu4_out"])
    before = server.inspector.sessions.stats()
    again = client.feature_maps("features-cnn", x, ["conv2a", "relu4_out"])
    after = server.inspector.sessions.stats()
    assert after["misses"] == before["misses"] and after["hits"] > before["hits"]
    assert set(again) == {"conv2a_out", "relu4_out"}
