"""A known-answer model: Conv 5x5 -> Relu whose two filters are fixed red/green edge detectors.

Filter 0 fires on a vertical edge with red on the left and green on the right; filter 1 is the
same edge turned horizontal (red above, green below). Maximizing them must draw such edges.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def edge_kernels() -> np.ndarray:
    k = np.zeros((2, 3, 5, 5), np.float32)
    k[0, 0, :, :2], k[0, 0, :, 3:] = 1.0, -1.0  # red left
    k[0, 1, :, :2], k[0, 1, :, 3:] = -1.0, 1.0  # green right
    k[1] = k[0].transpose(0, 2, 1)  # red above, green below
    return k / 10.0


def edge_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["input", "edge.weight"], ["conv"], name="conv",
                              kernel_shape=[5, 5], pads=[2] * 4),
             helper.make_node("Relu", ["conv"], ["edge"], name="relu")]
    graph = helper.make_graph(
        nodes, "edge", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("edge", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [numpy_helper.from_array(edge_kernels(), "edge.weight")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
