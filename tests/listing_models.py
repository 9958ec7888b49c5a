"""Models for the listing tests (tests/service/test_listing.py, tests/store/test_listing.py): each
exercises a field of ModelInfo a listing reads from the store's metadata instead of the model."""

from __future__ import annotations

import numpy as np
import onnx
from factory import CNNBuilder, small_cnn
from onnx import TensorProto, helper, numpy_helper


def lrn_cnn() -> onnx.ModelProto:
    """onnxruntime runs it, the gradient engine cannot differentiate it (LRN has no rule)."""
    b = CNNBuilder((1, 3, 16, 16), seed=3)
    x = b.relu(b.conv(b.input_name, 4, name="c1"), name="r1")
    x = b._same(x, b.node("LRN", [x], name="lrn", size=3))
    return b.build(b.gemm(b.flatten(b.gap(x)), 3, name="fc"), output_names=["logits"])


def two_inputs() -> onnx.ModelProto:
    """A non-image input listed first in the graph (inputs are listed image first) with an unknown
    dim (None), an int64 output, a second opset domain and a producer with a version."""
    w = numpy_helper.from_array(np.random.default_rng(5).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["image", "w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("Mul", ["relu", "scale"], ["scaled"], name="mul"),
             helper.make_node("Identity", ["conv"], ["raw"], name="raw"),
             helper.make_node("NonZero", ["scale"], ["nonzero"], name="nonzero")]
    graph = helper.make_graph(
        nodes, "two_inputs",
        [helper.make_tensor_value_info("scale", TensorProto.FLOAT, [None]),
         helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("scaled", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("raw", TensorProto.FLOAT, ["N", 4, None, 8]),
         helper.make_tensor_value_info("nonzero", TensorProto.INT64, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              producer_name="listing-tests", producer_version="2.1")
    model.ir_version = 8  # not onnx.checker: it wants every output's shape; onnxruntime does not
    return model


def upload_all(core) -> list:
    """Store the models through `core` (as ModelInfo): a plain CNN without a name, a named one with a
    preprocess spec, a provider this build lacks and a second name, the two-input model and the
    LRN model; ids in upload order."""
    plain = core.upload([small_cnn(seed=0).SerializeToString()])
    named = core.upload([small_cnn(seed=1, size=24, batch_dim=1).SerializeToString()], name="named",
                        preprocess={"resize": 28, "crop": [24, 24], "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]},
                        providers=("tensorrt", "cpu"))
    core.upload([small_cnn(seed=1, size=24, batch_dim=1).SerializeToString()], name="alias",
                preprocess={"resize": 24, "channel_order": "BGR"})
    multi = core.upload([two_inputs().SerializeToString()], name="multi")
    lrn = core.upload([lrn_cnn().SerializeToString()], name="lrn")
    assert not lrn.differentiable and [t.name for t in multi.inputs] == ["image", "scale"]
    return [plain.id, named.id, multi.id, lrn.id]


def opened(core, ids) -> list:
    """What the listing was before: each model opened and described."""
    return [core.models.info(core.models.get(i), layers=False) for i in ids]
