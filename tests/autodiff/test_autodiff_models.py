"""Whole models: directional derivatives <grad, v> against central differences of the plain
model (float32, so checked along the gradient's own direction and a random one, relative to
|grad|), known answers, policies against numpy, pruning, errors and batch independence."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from autodiff_reference import analytic, cut_at, expose, objective, real_model, session
from factory import CNNBuilder, resnet18_like, small_cnn
from onnx import helper

from inspector.errors import InvalidArgument
from inspector.graph.autodiff import (
    NotDifferentiable,
    blocking_ops,
    build_gradient_model,
    supported_ops,
)


def directional_check(model: onnx.ModelProto, feeds: dict[str, np.ndarray], start: str, wrt: str,
                      eps: float = 1e-2, tol: float = 2e-3, seed_value: int = 0) -> np.ndarray:
    """|FD(v) - <g, v>| <= tol * |g| for v = g/|g| and a random unit v; returns g."""
    rng = np.random.default_rng(seed_value)
    inputs = {i.name for i in model.graph.input}
    plain = model if wrt in inputs else cut_at(model, wrt)
    sess = session(expose(plain, [start]))
    values = _values(model, feeds, [wrt, start])
    base, out = values[wrt], values[start]
    seed = rng.standard_normal(out.shape).astype(np.float32)
    g = analytic(model, feeds, start, [wrt], seed)[wrt].astype(np.float64)
    norm = np.linalg.norm(g)
    assert norm > 0, "gradient is identically zero: nothing would be checked"
    random = rng.standard_normal(g.shape)
    for v in (g / norm, random / np.linalg.norm(random)):
        moved = [{**feeds, wrt: (base + sign * eps * v).astype(np.float32)} for sign in (1, -1)]
        fd = (objective(sess, moved[0], start, seed) - objective(sess, moved[1], start, seed)) / (
            2 * eps)
        assert abs(fd - float((g * v).sum())) <= tol * norm, (fd, float((g * v).sum()), norm)
    return g


def _values(model: onnx.ModelProto, feeds: dict[str, np.ndarray], names: list[str]):
    sess = session(expose(model, names))
    return dict(zip(names, sess.run(names, feeds), strict=True))


def image(shape, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("start, wrt", [
    ("logits", "input"), ("logits", "relu2_out"), ("relu4_out", "input"),
    ("cat3_out", "pool1_out"),
])
def test_small_cnn_directional(start, wrt):
    directional_check(small_cnn(), {"input": image((2, 3, 32, 32))}, start, wrt)


def test_resnet18_like_bn_directional():
    model = resnet18_like(size=64, classes=20, bn=True)
    directional_check(model, {"input": image((1, 3, 64, 64))}, "logits", "input")


def test_gradcam_gradient_has_closed_form():
    """d logits / d relu4 = fc.weight[k] / (H*W) everywhere (GAP then a linear layer)."""
    model = small_cnn()
    seed = np.zeros((2, 10), np.float32)
    seed[0, 3], seed[1, 7] = 1.0, 1.0
    got = analytic(model, {"input": image((2, 3, 32, 32))}, "logits", ["relu4_out"], seed)
    weight = onnx.numpy_helper.to_array(
        next(t for t in model.graph.initializer if t.name == "fc.weight"))
    g = got["relu4_out"]
    np.testing.assert_allclose(g[0], np.broadcast_to(weight[3][:, None, None] / 64, g[0].shape),
                               rtol=1e-6)
    np.testing.assert_allclose(g[1], np.broadcast_to(weight[7][:, None, None] / 64, g[1].shape),
                               rtol=1e-6)


def test_one_model_serves_any_batch_size_and_fetches_forward_values():
    model = small_cnn()
    gm = build_gradient_model(model, "logits", ["input"], fetch=["logits", "relu1_out"])
    sess = session(gm.model)
    plain = session(expose(model, ["relu1_out"]))
    x = image((3, 3, 32, 32))
    seed = image((3, 10), 2)
    names = [o.name for o in sess.get_outputs()]
    full = dict(zip(names, sess.run(None, {"input": x, gm.seed_input: seed}), strict=True))
    one = dict(zip(names, sess.run(None, {"input": x[1:2], gm.seed_input: seed[1:2]}),
                   strict=True))
    grad = gm.gradient_outputs["input"]
    np.testing.assert_allclose(one[grad][0], full[grad][1], rtol=1e-5, atol=1e-7)
    want_logits, want_relu = plain.run(["logits", "relu1_out"], {"input": x})
    np.testing.assert_allclose(full[gm.fetch_outputs["logits"]], want_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full[gm.fetch_outputs["relu1_out"]], want_relu, rtol=1e-5,
                               atol=1e-6)
    onnx.checker.check_model(gm.model)


def test_only_the_needed_subgraph_is_kept():
    model = small_cnn()
    gm = build_gradient_model(model, "relu2_out", ["pool1_out"])
    kept = {n.name for n in gm.model.graph.node}
    assert {"conv1", "pool1", "conv2a", "add2"} <= kept
    assert not kept & {"fc", "gap", "conv4", "dw3", "pw3"}
    assert [o.name for o in gm.model.graph.output] == [gm.gradient_outputs["pool1_out"]]
    originals = {t.name for t in model.graph.initializer}
    kept_weights = {t.name for t in gm.model.graph.initializer} & originals
    assert "fc.weight" not in kept_weights and "conv1.weight" in kept_weights


def test_gradient_wrt_start_itself_is_the_seed():
    seed = image((2, 10), 3)
    got = analytic(small_cnn(), {"input": image((2, 3, 32, 32))}, "logits", ["logits"], seed)
    np.testing.assert_array_equal(got["logits"], seed)


def mlp() -> tuple[onnx.ModelProto, list[np.ndarray]]:
    rng = np.random.default_rng(5)
    ws = [rng.standard_normal(s).astype(np.float32) for s in ((5, 6), (6, 4), (4, 3))]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h0"]), helper.make_node("Relu", ["h0"], ["a0"]),
             helper.make_node("MatMul", ["a0", "w1"], ["h1"]), helper.make_node("Relu", ["h1"], ["a1"]),
             helper.make_node("MatMul", ["a1", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
        [onnx.numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(ws)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, ws


def numpy_backprop(x, seed, ws, policy):
    acts, h = [], x.astype(np.float64)
    for w in ws[:-1]:
        h = h @ w
        acts.append(h)
        h = np.maximum(h, 0)
    g = seed.astype(np.float64)
    for w, pre in zip(ws[::-1], [*acts[::-1], None], strict=True):
        g = g @ w.T
        if pre is None:
            break
        if policy == "standard":
            g = g * (pre > 0)
        elif policy == "guided_backprop":
            g = g * (pre > 0) * (g > 0)
        else:
            g = g * (g > 0)
    return g


@pytest.mark.parametrize("policy", ["standard", "guided_backprop", "deconvnet"])
def test_relu_policies_match_numpy(policy):
    model, ws = mlp()
    x, seed = image((4, 5), 6), image((4, 3), 7)
    got = analytic(model, {"x": x}, "y", ["x"], seed, policy=policy)["x"]
    want = numpy_backprop(x, seed, ws, policy)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if policy != "standard":
        assert not np.allclose(want, numpy_backprop(x, seed, ws, "standard"))


def model_with_cumsum() -> onnx.ModelProto:
    b = CNNBuilder((1, 3, 8, 8))
    x = b.relu(b.conv(b.input_name, 4, name="c1"), name="r1")
    axis = b.init("axis", np.array(2, np.int64))
    y = b.node("CumSum", [x, axis], name="running_total")
    b.channels[y] = 4
    return b.build(b.gap(y, name="g"), output_names=["out"])


def test_unsupported_op_is_named_in_a_clear_error():
    model = model_with_cumsum()
    assert blocking_ops(model) == [("CumSum", "running_total")]
    assert blocking_ops(model, start="r1_out") == []
    with pytest.raises(NotDifferentiable) as err:
        build_gradient_model(model, "out", ["input"])
    assert "CumSum (node 'running_total')" in err.value.message
    assert "Conv" in err.value.message and err.value.code == "FAILED_PRECONDITION"
    build_gradient_model(model, "r1_out", ["input"])  # the part before it still works


def test_integer_shape_paths_are_cut_not_blocking():
    """Shape -> Gather -> Concat -> Reshape: the shape branch carries no gradient."""
    b = CNNBuilder((1, 3, 8, 8))
    x = b.conv(b.input_name, 4, name="c1")
    shape = b.node("Shape", [x], name="shape")
    batch = b.node("Gather", [shape, b.init("zero", np.array([0], np.int64))], name="batch")
    target = b.node("Concat", [batch, b.init("rest", np.array([-1], np.int64))], name="target",
                    axis=0)
    flat = b.node("Reshape", [x, target], name="flat")
    model = b.build(flat, output_names=["out"])
    assert blocking_ops(model) == []
    directional_check(model, {"input": image((2, 3, 8, 8))}, "out", "input", eps=1.0)


def test_user_mistakes_raise_invalid_argument():
    model = small_cnn()
    with pytest.raises(InvalidArgument, match="nope"):
        build_gradient_model(model, "nope", ["input"])
    with pytest.raises(InvalidArgument, match="conv1.weight"):
        build_gradient_model(model, "logits", ["conv1.weight"])
    with pytest.raises(InvalidArgument, match="policy"):
        build_gradient_model(model, "logits", ["input"], policy="smooth")
    with pytest.raises(InvalidArgument, match="fetch"):
        build_gradient_model(model, "logits", ["input"], fetch=["missing"])
    assert "Conv" in supported_ops() and "MaxPool" in supported_ops()


CLS, DET, REC, YOLO = "ppocr-cls", "ppocr-det", "ppocr-rec", "yolov8n-nudenet"


def conv_outputs(model: onnx.ModelProto) -> list[str]:
    return [n.output[0] for n in model.graph.node if n.op_type == "Conv"]


@pytest.mark.parametrize("where", ["input", "intermediate"])
def test_rapidocr_classifier(where):
    model = real_model(CLS)
    convs = conv_outputs(model)
    start = model.graph.output[0].name if where == "input" else convs[len(convs) * 2 // 3]
    wrt = "x" if where == "input" else convs[len(convs) // 3]
    directional_check(model, {"x": image((2, 3, 48, 192))}, start, wrt)


@pytest.mark.parametrize("where", ["input", "intermediate"])
def test_rapidocr_detector(where):
    """The sigmoid map's input gradient is small (|g| ~ 0.015) next to float32 noise in the
    6144-term objective, so the whole-graph check allows 1 % of |g| there."""
    model = real_model(DET)
    convs = conv_outputs(model)
    start = model.graph.output[0].name if where == "input" else convs[len(convs) * 2 // 3]
    wrt = "x" if where == "input" else convs[len(convs) // 3]
    directional_check(model, {"x": image((1, 3, 64, 96))}, start, wrt,
                      tol=1e-2 if where == "input" else 2e-3)


def test_yolov8_detector():
    model = real_model(YOLO)
    directional_check(model, {"images": image((1, 3, 160, 160))}, model.graph.output[0].name,
                      "images")


def test_yolov8_intermediate_to_intermediate():
    """Through Split, Concat, MaxPool (SPPF) and nearest Resize, between two inner convs."""
    model = real_model(YOLO)
    convs = conv_outputs(model)
    directional_check(model, {"images": image((1, 3, 128, 128))}, convs[45], convs[8])


def test_rapidocr_recognizer_attention_path():
    """SVTR: Transpose, MatMul, Softmax, ReduceMean/Pow/Sqrt layer norms, Squeeze."""
    model = real_model(REC)
    directional_check(model, {"x": image((1, 3, 48, 64))}, model.graph.output[0].name, "x")


def mixed_model(dtype: int) -> onnx.ModelProto:
    """Conv, Sigmoid, MaxPool, AveragePool, Resize, Clip, GAP, Gemm, Softmax in one dtype."""
    rng = np.random.default_rng(0)
    npd = helper.tensor_dtype_to_np_dtype(dtype)
    consts = {"w": rng.standard_normal((4, 3, 3, 3)).astype(npd),
              "fc": rng.standard_normal((5, 4)).astype(npd),
              "sc": np.array([1, 1, 2, 2], np.float32), "lo": np.array(0.2, npd),
              "hi": np.array(0.8, npd)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Sigmoid", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["a", "", "sc"], ["z"], mode="linear"),
             helper.make_node("Clip", ["z", "lo", "hi"], ["cz"]),
             helper.make_node("GlobalAveragePool", ["cz"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
             helper.make_node("Softmax", ["y"], ["s"])]
    graph = helper.make_graph(
        nodes, "mixed", [helper.make_tensor_value_info("x", dtype, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("s", dtype, None)],
        [onnx.numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_float16_model_gradient_matches_float32():
    x, seed = image((2, 3, 8, 8)), image((2, 5), 2)
    want = analytic(mixed_model(onnx.TensorProto.FLOAT), {"x": x}, "s", ["x"], seed)["x"]
    got = analytic(mixed_model(onnx.TensorProto.FLOAT16), {"x": x.astype(np.float16)}, "s", ["x"],
                   seed.astype(np.float16))["x"]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, want, atol=5e-3 * np.abs(want).max())
    directional_check(mixed_model(onnx.TensorProto.FLOAT), {"x": x}, "s", "x")


def test_several_wrt_in_one_model_match_separate_models():
    model, x, seed = small_cnn(), image((2, 3, 32, 32)), image((2, 10), 4)
    wrt = ["input", "pool1_out", "relu3a_out"]
    together = analytic(model, {"input": x}, "logits", wrt, seed)
    for w in wrt:
        alone = analytic(model, {"input": x}, "logits", [w], seed)[w]
        np.testing.assert_allclose(together[w], alone, rtol=1e-5, atol=1e-7)


def test_blocking_ops_defaults_to_first_output_and_input():
    model = model_with_cumsum()
    assert blocking_ops(model) == blocking_ops(model, "out", ["input"])
    assert blocking_ops(small_cnn()) == []


def test_rule_refusing_a_node_shows_in_blocking_ops():
    b = CNNBuilder((1, 3, 8, 8))
    x = b.node("MaxPool", [b.input_name], name="colmajor", kernel_shape=[2, 2], strides=[2, 2],
               storage_order=1)
    b.channels[x] = 3
    model = b.build(b.gap(x, name="g"), output_names=["out"])
    assert blocking_ops(model) == [("MaxPool", "colmajor")]
    with pytest.raises(NotDifferentiable, match="storage_order"):
        build_gradient_model(model, "out", ["input"])


def test_gradients_agree_across_onnxruntime_optimization_levels():
    """The lead may run gradient models at ORT_ENABLE_ALL; fusions must not change the result.
    (The DBNet head's saturated sigmoid exposed slope formulas that depend on ORT's kernel.)"""
    model = real_model(DET)
    gm = build_gradient_model(model, model.graph.output[0].name, ["x"])
    feeds = {"x": image((1, 3, 64, 96), 0), gm.seed_input: image((1, 1, 64, 96), 1)}
    results = []
    for level in (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = level
        sess = ort.InferenceSession(gm.model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        results.append(sess.run([gm.gradient_outputs["x"]], feeds)[0])
    error = np.linalg.norm(results[0] - results[1]) / np.linalg.norm(results[0])
    assert error < 1e-4, error
