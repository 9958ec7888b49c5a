"""graph.batch_axis finds the input's batch axis of any tensor: from shape inference where the batch
symbol survives, from a probe run (one image, then the same image twice) where it does not."""

import numpy as np
import onnx
import pytest
from factory import small_cnn
from methods.methods_models import (  # tests/methods (tests/ is on the path)
    detector_model,
    nhwc,
    nhwc_features_model,
    patch_model,
    swin_like_model,
    time_major_model,
    vit_model,
)
from onnx import TensorProto, helper, numpy_helper

from inspector.errors import FailedPrecondition
from inspector.graph.batch_axis import (
    SYMBOL,
    batch_axes,
    batch_axis,
    graph_batch_axes,
    layout_label,
)
from inspector.runtime.access import OrtModelAccess


class Counting(OrtModelAccess):
    """A real access that counts its forward runs (the probe's cost)."""

    def __init__(self, model):
        super().__init__(model)
        self.forwards = 0

    def forward(self, x, fetch=()):
        self.forwards += 1
        return super().forward(x, fetch)


def images(shape, n=2, seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


@pytest.mark.parametrize("model, shape, expected", [
    (vit_model("NTC"), (3, 16, 16),  # [N, C, h, w] -> [N, T, C] -> class token -> blocks -> [N, K]
     {"patches": 0, "patch_tokens": 0, "tokens": 0, "block1": 0, "normed": 0, "pooled": 0, "logits": 0}),
    (vit_model("TNC"), (3, 16, 16),  # the same as [T, N, C]
     {"patches": 0, "patch_tokens": 1, "tokens": 1, "block1": 1, "r1_nct": 0, "normed": 1, "logits": 0}),
    (time_major_model(), (3, 8, 24), {"feat": 0, "squeezed": 0, "seq": 1, "logits": 1}),  # [T, N, K] head
    (time_major_model(lstm=True), (3, 8, 24), {"seq": 1, "lstm_y": 2, "lstm_out": 1, "logits": 1}),
    (detector_model(), (3, 12, 12), {"all_boxes": 0, "score": 0, "boxes": 0, "logits": 0}),
    (nhwc_features_model(), (3, 16, 16), {"relu": 0, "feat_nhwc": 0, "pooled": 0}),  # [N, H, W, C]
    (nhwc(patch_model()), (16, 16, 3), {"images": 0, "nchw": 0, "feat_out": 0, "logits": 0}),  # NHWC input
], ids=["vit_ntc", "vit_tnc", "time_major", "lstm", "detector", "nhwc_layer", "nhwc_input"])
def test_batch_axes_from_the_graph(model, shape, expected):
    inferred = graph_batch_axes(model)
    access = Counting(model)
    found = batch_axes(access, list(expected), images(shape))
    assert found == expected
    for name, axis in expected.items():
        assert inferred[name] == (axis,), name  # the graph alone knew: no probe run
    assert access.forwards == 0
    x = images(shape, n=3)
    values = access.forward(x, fetch=list(expected))
    for name, axis in expected.items():  # and the runtime agrees: 3 images on that axis
        assert values[name].shape[axis] == 3, (name, values[name].shape)


def test_large_weights_are_not_needed():
    """Inference runs on a copy without the data of large float weights (small_cnn's conv4 has 2304)."""
    model = small_cnn(seed=1, batch_dim=1)  # a fixed batch of 1: Flatten keeps the symbol
    assert max(int(np.prod(t.dims)) for t in model.graph.initializer) > 1024
    inferred = graph_batch_axes(model)
    assert inferred["relu4_out"] == (0,) and inferred["logits"] == (0,)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # the model itself untouched


def test_initializers_and_batch_free_tensors_have_no_batch_axis():
    model = vit_model("NTC")
    access = OrtModelAccess(model)
    x = images((3, 16, 16))
    assert batch_axis(access, "patch_w", x) is None  # a weight
    assert batch_axis(access, "input", x) == 0
    assert graph_batch_axes(model)["cls_shape"] == ()  # the shape [N, 1, C] as a value: no batch axis
    assert batch_axis(access, "cls_shape", x) is None  # the probe: the same [3] for one and two images


@pytest.mark.parametrize("layout, axis", [("NTC", 0), ("TNC", 1)])
def test_probe_where_inference_loses_the_batch(layout, axis):
    """A batch-1 export (Reshape to [1, C, T]) pins the batch to 1 for shape inference; the probe runs
    tell the axis. [T, 1, C] cannot run for two images (the access splits and refuses to join it), so
    its one axis of size 1 is the batch's. Memoized: the second question runs nothing."""
    model = vit_model(layout, fixed=True)
    assert graph_batch_axes(model)["block1"] == ()
    access = Counting(model)
    x = images((3, 16, 16), n=1)
    assert batch_axis(access, "block1", x) == axis
    runs = access.forwards
    assert runs >= 2
    assert batch_axis(access, "block1", x) == axis and access.forwards == runs
    assert batch_axis(access, "patches", x) == 0 and access.forwards == runs  # the graph knows this one


def test_folded_batch_is_refused_naming_the_tensor():
    access = OrtModelAccess(swin_like_model())
    x = images((3, 16, 16))
    with pytest.raises(FailedPrecondition, match="'windows1' folds the batch") as err:
        batch_axis(access, "windows1", x)
    assert "[4, 4, 4] for one image, [8, 4, 4] for two" in err.value.message
    with pytest.raises(FailedPrecondition, match="'windows1' folds the batch"):  # remembered, raised again
        batch_axis(access, "windows1", x)
    assert batch_axis(access, "stage1", x) == 0  # [N, h, w, C] stage output


def batchless_model() -> onnx.ModelProto:
    """A batch-1 export whose output has no batch axis: conv -> Reshape [4, -1] -> Transpose: "rows" [64, 4]."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([4, -1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["conv", "shape"], ["flat"]),
             helper.make_node("Transpose", ["flat"], ["rows"], perm=[1, 0])]
    graph = helper.make_graph(nodes, "batchless", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                 [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [64, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_tensor_without_batch_axis():
    access = OrtModelAccess(batchless_model())
    assert graph_batch_axes(access.graph)["rows"] == ()
    assert batch_axis(access, "rows", images((3, 8, 8), n=1)) is None
    assert batch_axis(access, "conv") == 0  # no example input needed where the graph knows


def test_graph_symbol_and_labels():
    inferred = graph_batch_axes(time_major_model())
    assert inferred["input"] == (0,) and SYMBOL == "inspector_batch_axis"
    assert layout_label((26, 2, 37), 1) == "[26, N=2, 37]"
    assert layout_label((5, 4), None) == "[5, 4]"
