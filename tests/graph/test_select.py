"""resolve_tensors: each selector kind, ordering, the default choice and unknown names."""

import re

import pytest
from factory import small_cnn
from onnx import TensorProto, helper

from inspector import errors
from inspector.graph.select import resolve_tensors


def test_each_selector_kind_in_graph_order():
    m = small_cnn()
    assert resolve_tensors(m, ["relu2_out"]) == ["relu2_out"]
    assert resolve_tensors(m, ["conv4"]) == ["conv4_out"]
    assert resolve_tensors(m, ["input", "conv1.weight"]) == ["input", "conv1.weight"]
    relus = ["relu1_out", "relu2a_out", "relu2_out", "relu3a_out", "relu3b_out", "relu4_out"]
    assert resolve_tensors(m, ["Relu"]) == relus
    assert resolve_tensors(m, ["relu"]) == relus
    # duplicates collapse and graph order wins over request order
    assert resolve_tensors(m, ["relu4", "MaxPool", "relu1_out", "relu1"]) == [
        "relu1_out", "pool1_out", "relu4_out"]


def test_all_is_every_float_node_output():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    outs = [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 2, 4, 4]),
            helper.make_tensor_value_info("ss", TensorProto.INT64, [8])]
    nodes = [helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),  # int64: not a feature map
             helper.make_node("Concat", ["s", "s"], ["ss"], axis=0)]  # an int "merge" too
    model = helper.make_model(helper.make_graph(nodes, "g", [x], outs),
                              opset_imports=[helper.make_opsetid("", 17)])
    assert resolve_tensors(model, ["all"]) == ["n", "r"]
    assert resolve_tensors(model, None) == ["r"]
    m = small_cnn()
    expected = [o for n in m.graph.node for o in n.output]
    assert resolve_tensors(m, ["all"]) == expected


def test_default_selection_small_cnn():
    assert resolve_tensors(small_cnn(), None) == [
        "relu1_out", "pool1_out", "relu2a_out", "conv2b_out", "add2_out", "relu2_out",
        "relu3a_out", "relu3b_out", "cat3_out", "relu4_out", "gap_out"]
    assert resolve_tensors(small_cnn(), []) == resolve_tensors(small_cnn(), None)


def test_default_selection_keeps_gated_products_not_gates():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 2, 1, 1], [1.0, 0, 0, 1])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
             helper.make_node("Mul", ["c", "s"], ["silu"], name="mul"),
             helper.make_node("Conv", ["silu", "w"], ["y"], name="head")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    assert resolve_tensors(model, None) == ["silu", "y"]


def test_unknown_selectors_named_with_suggestions():
    with pytest.raises(errors.InvalidArgument) as info:
        resolve_tensors(small_cnn(), ["relu_1", "Relu", "nothing-like-it", "conv4x"])
    msg = info.value.message
    # exactly the unknown ones are reported ("Relu" is a valid op type), each with its hints
    assert re.findall(r"(?:matches |; )'([^']+)'", msg) == ["relu_1", "nothing-like-it", "conv4x"]
    assert "'relu_1' (did you mean 'relu1'" in msg and "'conv4x' (did you mean 'conv4'" in msg
    assert "'nothing-like-it';" in msg


def test_unknown_names_suggest_prefix_matches_and_name_real_calls():
    from inspector.graph.select import unknown_selectors_message

    text = unknown_selectors_message(["layer4"], ["layer4.1.relu", "layer3.0.conv1", "fc"])
    assert "did you mean 'layer4.1.relu'" in text and "describe_model" not in text
    assert "inspector models show" in text
