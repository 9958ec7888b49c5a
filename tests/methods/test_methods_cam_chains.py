"""CAM reads the classifier weights also when an fp16 export keeps them behind a Cast."""

import numpy as np
import onnx
from factory import small_cnn
from onnx import TensorProto, helper, numpy_helper

from inspector.methods import get_method
from inspector.methods.base import Target
from inspector.runtime.access import OrtModelAccess


def _fp16_head(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    init = next(i for i in out.graph.initializer if i.name == "fc.weight")
    w16 = numpy_helper.to_array(init).astype(np.float16)
    out.graph.initializer.remove(init)
    out.graph.initializer.append(numpy_helper.from_array(w16, "fc.weight16"))
    out.graph.node.insert(0, helper.make_node("Cast", ["fc.weight16"], ["fc.weight"], to=TensorProto.FLOAT))
    return out


def test_cam_through_a_cast_equals_gradcam():
    access = OrtModelAccess(_fp16_head(small_cnn(seed=91)))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    cam = get_method("cam").explain(access, x, Target(index=(3,)), ["relu4_out"], score_after=False)
    grad = get_method("gradcam").explain(access, x, Target(index=(3,)), ["relu4_out"], score_after=False)
    np.testing.assert_allclose(cam.layer_heatmap, grad.layer_heatmap, atol=1e-5)
    assert cam.layer_heatmap.max() > 0
