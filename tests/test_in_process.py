"""The core API in-process: what the service does, without gRPC (in-process is first-class: docs/ARCHITECTURE.md)."""

import numpy as np
import onnxruntime as ort
from factory import small_cnn

from inspector import InputData, Inspector, InspectorConfig


def test_in_process_calls_equal_plain_onnxruntime(tmp_path):
    model = small_cnn(seed=71)
    core = Inspector(InspectorConfig(store_dir=tmp_path / "store", vetting=False))
    info = core.upload([model.SerializeToString()], name="m")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = core.infer("m", InputData(tensor=x)).outputs["logits"]
    np.testing.assert_allclose(logits, plain.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)
    maps = core.feature_maps("m", InputData(tensor=x), ["relu1_out"]).tensors
    assert maps["relu1_out"].shape == (2, 8, 32, 32)
    exp = core.explain("m", InputData(tensor=x), "gradcam", params={"score_after": False}, overlay=False)
    assert exp.heatmap.shape == (2, 32, 32) and exp.overlay_png == [] and exp.score_after is None
    assert core.unload("m") == info.id and core.list_models() == []
