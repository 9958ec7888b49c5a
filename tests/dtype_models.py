"""A float32 model converted to other dtypes, the way exporters write them, for the dtype tests.

onnxconverter-common is not a dependency, so the conversion is written here: every float32
initializer, graph input/output and value_info becomes float16 (or bfloat16); Constant nodes and
Cast(to=float) nodes are converted too. `with_integer_input` feeds images as uint8/int8: the
graph input becomes that integer type and a Cast to float32 is the model's first node.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _converted(t: onnx.TensorProto, elem: int) -> onnx.TensorProto:
    value = numpy_helper.to_array(t)
    if elem == TensorProto.FLOAT16:
        return numpy_helper.from_array(value.astype(np.float16), t.name)
    return helper.make_tensor(t.name, elem, value.shape, value.astype(np.float32).ravel().tolist())


def to_float(model: onnx.ModelProto, elem: int = TensorProto.FLOAT16) -> onnx.ModelProto:
    """`model` with every float32 tensor in `elem` (FLOAT16 or BFLOAT16)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(_converted(t, elem))
    for v in [*g.input, *g.output, *g.value_info]:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = elem
    for node in g.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(_converted(attr.t, elem))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = elem
    return m


def with_integer_input(model: onnx.ModelProto, elem: int = TensorProto.UINT8) -> onnx.ModelProto:
    """`model` fed images as `elem`: the input keeps its name, a Cast to float32 comes first."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    name = g.input[0].name
    g.input[0].type.tensor_type.elem_type = elem
    for node in g.node:
        for i, x in enumerate(node.input):
            if x == name:
                node.input[i] = f"{name}_float"
    g.node.insert(0, helper.make_node("Cast", [name], [f"{name}_float"], to=TensorProto.FLOAT, name="cast_input"))
    return m


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
