"""describe_model / node_names on factory models, hand-built edge cases and real models."""

import numpy as np
import onnx
from factory import small_cnn
from onnx import TensorProto, helper, numpy_helper

from inspector.domain import TensorInfo
from inspector.graph.info import describe_model, node_names


def _direct_constant_sizes(model: onnx.ModelProto) -> list[int]:
    """Reference parameter count per node: elements of the initializer / Constant arrays (decoded
    by numpy) its inputs come from, directly or through Identity / Cast."""
    g = model.graph
    sizes = {t.name: numpy_helper.to_array(t).size for t in g.initializer}
    sizes.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t).size
                  for n in g.node if n.op_type == "Constant"})
    for n in g.node:  # graph order: a chain's source is sized before the chain
        if n.op_type in ("Identity", "Cast") and n.input[0] in sizes:
            sizes[n.output[0]] = sizes[n.input[0]]
    return [sum(sizes.get(i, 0) for i in dict.fromkeys(n.input)) for n in g.node]


def test_small_cnn_table():
    model = small_cnn()
    d = describe_model(model)
    assert d.inputs == (TensorInfo("input", "float32", ("N", 3, 32, 32)),)
    assert d.outputs == (TensorInfo("logits", "float32", ("N", 10)),)
    assert d.opsets == {"ai.onnx": 17}
    assert d.producer == "inspector-tests"
    assert [layer.name for layer in d.layers] == [n.name for n in model.graph.node]
    rows = {layer.name: layer for layer in d.layers}
    assert rows["conv1"].outputs[0].shape == ("N", 8, 32, 32)
    assert rows["pool1"].outputs[0].shape == ("N", 8, 16, 16)
    assert rows["conv4"].outputs[0].shape == ("N", 16, 8, 8)
    assert rows["fc"].outputs[0].shape == ("N", 10)
    assert rows["conv1"].parameter_count == 8 * 3 * 3 * 3 + 8
    assert [layer.parameter_count for layer in d.layers] == _direct_constant_sizes(model)
    total = sum(numpy_helper.to_array(t).size for t in model.graph.initializer)
    assert sum(layer.parameter_count for layer in d.layers) == total
    weighted = {layer.name for layer in d.layers if layer.has_weights}
    assert weighted == {"conv1", "conv2a", "conv2b", "dw3", "pw3", "conv4", "fc"}
    assert rows["fc"].weight_names == ("fc.weight", "fc.bias")
    assert rows["relu1"].weight_names == () and rows["relu1"].parameter_count == 0


def _tiny(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_unnamed_and_repeated_names_are_generated_consistently():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Neg", ["a"], ["b"], name="dup"),
             helper.make_node("Abs", ["b"], ["c"], name="dup"),
             helper.make_node("Relu", ["c"], ["y"])]
    model = _tiny(nodes, [x], [y])
    names = node_names(model)
    assert names == ["Relu_0", "dup", "Abs_2", "Relu_3"]
    assert [layer.name for layer in describe_model(model).layers] == names


def test_symbolic_unknown_and_initializer_inputs():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, None])
    x.type.tensor_type.shape.dim[2].dim_value = -1  # exporters write -1 for "unknown"
    w_in = helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    t = helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1])
    mm = helper.make_node("MatMul", ["xt", "w"], ["y"], name="mm")
    model = _tiny([t, mm], [x, w_in], [y], [w])
    d = describe_model(model)
    assert d.inputs == (TensorInfo("x", "float32", ("batch", 4, None)),)
    mm_row = d.layers[1]
    assert mm_row.outputs[0] == TensorInfo("y", "float32", ("batch", None, 4))
    assert mm_row.has_weights and mm_row.weight_names == ("w",) and mm_row.parameter_count == 16


def test_uninferable_model_still_described():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    nodes = [helper.make_node("Mystery", ["x"], ["m"], domain="com.example", name="odd"),
             helper.make_node("Relu", ["m"], ["y"], name="r")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    d = describe_model(model)
    assert d.layers[0].outputs == (TensorInfo("m", None, None),)
    assert d.opsets == {"ai.onnx": 17, "com.example": 1}
    assert d.outputs == (TensorInfo("y", "float32", (1, 3)),)


def test_real_models(real_model_path):
    for name, channels in (("ch_ppocr_mobile_v2.0_cls_infer.onnx", 3), ("320n.onnx", 3)):
        model = onnx.load(real_model_path(name))
        d = describe_model(model)
        assert len(d.inputs) == 1 and d.inputs[0].dtype == "float32"
        assert d.inputs[0].shape[1] == channels and len(d.inputs[0].shape) == 4
        assert [layer.parameter_count for layer in d.layers] == _direct_constant_sizes(model)
        consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t)
                       for n in model.graph.node if n.op_type == "Constant"})
        convs = [layer for layer in d.layers if layer.op_type == "Conv"]
        assert convs and all(layer.has_weights for layer in convs)
        for layer in convs:  # inferred channel count must match the weight's output channels
            assert layer.weight_names[0] == layer.inputs[1]
            shape = layer.outputs[0].shape
            assert shape is not None and shape[1] == consts[layer.inputs[1]].shape[0]
    yolo = describe_model(onnx.load(real_model_path("320n.onnx")))
    assert yolo.inputs[0].shape == ("batch", 3, "height", "width")
    assert yolo.producer == "pytorch 2.3.1"
    cls = describe_model(onnx.load(real_model_path("ch_ppocr_mobile_v2.0_cls_infer.onnx")))
    assert cls.inputs[0].shape == (None, 3, "?", "?") and cls.outputs[0].shape == (None, 2)
