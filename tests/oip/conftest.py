"""A real server (gRPC and HTTP edges) over a model root laid out as a Triton repository."""

from __future__ import annotations

import onnx
import pytest
from factory import small_cnn
from oip_models import fp16_model, two_input_model

from inspector.config import InspectorConfig
from inspector.service.server import start_server


@pytest.fixture(scope="module")
def oip_server(tmp_path_factory):
    """Models under the root: cnn.onnx (a file), half/1/model.onnx (Triton's layout), two/model.onnx."""
    root = tmp_path_factory.mktemp("oip")
    models = root / "models"
    (models / "half" / "1").mkdir(parents=True)
    (models / "two").mkdir()
    onnx.save(small_cnn(seed=4), models / "cnn.onnx")
    onnx.save(fp16_model(), models / "half" / "1" / "model.onnx")
    onnx.save(two_input_model(), models / "two" / "model.onnx")
    config = InspectorConfig(store_dir=root / "store", model_roots=(models,), intra_op_threads=2)
    running = start_server(config, port=0, http_port=0)
    running.model_root = models
    yield running
    running.stop(grace=1.0)
