"""Gradient models of float16, bfloat16 and integer-input models: types consistent, values right.

Every generated graph must pass onnx's strict type inference (a Greater or Where between a
float16 gradient and a float32 constant is what made guided backprop fail to load). bfloat16
gradient models are checked at this level only when onnxruntime's CPU provider has no bfloat16
kernels (Conv, Relu: NOT_IMPLEMENTED in onnxruntime 1.32); the run is skipped then.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from dtype_models import cosine, to_float, with_integer_input
from factory import small_cnn
from onnx import TensorProto, helper, numpy_helper, version_converter

from inspector.errors import InvalidArgument
from inspector.graph.autodiff import POLICIES, blocking_ops, build_gradient_model
from inspector.graph.seeding import seed_from_top1


def strict(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def run(model: onnx.ModelProto, feeds: dict, outputs=None) -> dict:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def mlp() -> onnx.ModelProto:
    """x [N, 12] -> MatMul -> Add -> Relu -> MatMul -> Sigmoid: ops with bfloat16 at opset 17."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (12, 16)), ("b1", (16,)), ("w2", (16, 5)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def output_types(model: onnx.ModelProto) -> dict[str, int]:
    return {o.name: o.type.tensor_type.elem_type for o in model.graph.output}


@pytest.mark.parametrize("policy", POLICIES)
def test_float16_gradient_models_type_check_and_load(policy):
    model = to_float(small_cnn())
    for edges in (False, True):
        gm = build_gradient_model(model, "logits", ["input", "relu4_out"], policy=policy,
                                  fetch=["logits"], float32_edges=edges)
        strict(gm.model)
        strict(seed_from_top1(gm, "logits").model)
        seed = next(i for i in gm.model.graph.input if i.name == gm.seed_input).type.tensor_type.elem_type
        grad = TensorProto.FLOAT if edges else TensorProto.FLOAT16
        assert seed == grad
        assert output_types(gm.model) == {"input_grad": grad, "relu4_out_grad": grad,
                                          "logits_value": TensorProto.FLOAT16}
        x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float16)
        out = run(gm.model, {"input": x, gm.seed_input: np.eye(10, dtype=onnx.helper.tensor_dtype_to_np_dtype(seed))[[1, 2]]})
        assert np.all(np.isfinite(out["input_grad"])) and np.abs(out["input_grad"]).max() > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_float16_float32_edges_match_float32_model(policy):
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    seed = np.eye(10, dtype=np.float32)[[3, 7]]
    want = build_gradient_model(small_cnn(), "logits", ["input"], policy=policy)
    got = build_gradient_model(to_float(small_cnn()), "logits", ["input"], policy=policy, float32_edges=True)
    w = run(want.model, {"input": x, want.seed_input: seed})["input_grad"]
    g = run(got.model, {"input": x.astype(np.float16), got.seed_input: seed})["input_grad"]
    assert g.dtype == np.float32
    for i in range(2):
        assert cosine(g[i], w[i]) > 0.99


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_bfloat16_gradient_models_type_check(policy, which):
    base = mlp() if which == "mlp" else version_converter.convert_version(small_cnn(), 22)  # bf16 Conv: opset 22
    model = to_float(base, TensorProto.BFLOAT16)
    strict(model)
    start, wrt = ("y", ["x", "r"]) if which == "mlp" else ("logits", ["input", "relu4_out"])
    gm = build_gradient_model(model, start, wrt, policy=policy, fetch=[start], float32_edges=True)
    strict(gm.model)
    assert set(output_types(gm.model).values()) == {TensorProto.FLOAT}  # numpy has no bfloat16
    if which == "cnn":
        strict(seed_from_top1(gm, "logits").model)


def test_bfloat16_mlp_gradient_runs_where_the_provider_has_kernels():
    gm = build_gradient_model(to_float(mlp(), TensorProto.BFLOAT16), "y", ["x"], float32_edges=True)
    x = np.random.default_rng(2).standard_normal((3, 12)).astype(np.float32)
    try:
        sess = ort.InferenceSession(gm.model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime 1.32 CPU: NOT_IMPLEMENTED for Relu(14) in bfloat16
        pytest.skip(f"onnxruntime's CPU provider cannot run bfloat16 here: {str(exc)[:100]}")
    import ml_dtypes  # pragma: no cover (needs bfloat16 kernels)

    got = sess.run(None, {"x": x.astype(ml_dtypes.bfloat16), gm.seed_input: np.ones((3, 5), np.float32)})[0]
    want_gm = build_gradient_model(mlp(), "y", ["x"])
    want = run(want_gm.model, {"x": x, want_gm.seed_input: np.ones((3, 5), np.float32)})["x_grad"]
    assert cosine(got, want) > 0.99


@pytest.mark.parametrize("elem", [TensorProto.UINT8, TensorProto.INT8])
@pytest.mark.parametrize("policy", POLICIES)
def test_integer_input_is_differentiated_straight_through(elem, policy):
    model = with_integer_input(small_cnn(), elem)
    gm = build_gradient_model(model, "logits", ["input"], policy=policy, fetch=["logits", "relu1_out"],
                              float32_edges=True)
    strict(gm.model)
    assert gm.float_inputs == ("input",)
    assert next(i for i in gm.model.graph.input if i.name == "input").type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(n.op_type == "Cast" and n.name.endswith("__straight_through") for n in gm.model.graph.node)
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    info = np.iinfo(dtype)
    x = np.random.default_rng(3).integers(info.min, int(info.max) + 1, (2, 3, 32, 32)).astype(np.float32)
    seed = np.eye(10, dtype=np.float32)[[0, 5]]
    got = run(gm.model, {"input": x, gm.seed_input: seed})
    ref = build_gradient_model(small_cnn(), "logits", ["input"], policy=policy, fetch=["logits", "relu1_out"])
    want = run(ref.model, {"input": x, ref.seed_input: seed})
    np.testing.assert_allclose(got["input_grad"], want["input_grad"], rtol=1e-5,
                               atol=1e-6 * np.abs(want["input_grad"]).max())
    np.testing.assert_array_equal(got["logits_value"], want["logits_value"])
    # the forward values are the integer model's own
    np.testing.assert_array_equal(got["logits_value"], run(model, {"input": x.astype(dtype)})["logits"])


def test_integer_input_not_differentiated_keeps_its_type():
    model = with_integer_input(small_cnn())
    gm = build_gradient_model(model, "logits", ["relu4_out"], float32_edges=True)
    assert gm.float_inputs == ()
    assert next(i for i in gm.model.graph.input if i.name == "input").type.tensor_type.elem_type == TensorProto.UINT8
    assert blocking_ops(model) == []  # the default wrt (the integer input) builds


def test_integer_tensor_inside_the_graph_is_still_refused():
    b = helper.make_node
    nodes = [b("Cast", ["x"], ["q"], to=TensorProto.UINT8), b("Cast", ["q"], ["f"], to=TensorProto.FLOAT),
             b("Relu", ["f"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InvalidArgument, match="'q' holds uint8"):
        build_gradient_model(model, "y", ["q"])


def test_int64_input_is_refused_not_made_float():
    """Token ids and indices get no straight-through Cast: their gradient means nothing."""
    model = with_integer_input(small_cnn(), TensorProto.INT64)
    with pytest.raises(InvalidArgument, match="'input' holds int64"):
        build_gradient_model(model, "logits", ["input"])
