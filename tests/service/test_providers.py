"""Execution providers: CUDA asked for without a GPU falls back to CPU and says so, or is refused."""

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from factory import small_cnn

pytestmark = pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                                reason="this machine has CUDA: the fallback cannot happen here")


def test_cuda_falls_back_to_cpu_with_a_warning_in_every_response(client):
    info = client.load_model(small_cnn(seed=61).SerializeToString(), name="cuda-cnn", providers=["cuda", "cpu"])
    assert info.providers == ("CPUExecutionProvider",)  # what it will really run on
    x = np.zeros((1, 3, 32, 32), np.float32)
    res = client.feature_map_results("cuda-cnn", x, ["relu1_out"])
    assert res.providers == ("CPUExecutionProvider",)
    assert any("CUDA" in w and "CPU" in w for w in res.warnings), res.warnings
    exp = client.explain("cuda-cnn", x, method="gradcam")
    assert any("CUDA" in w for w in exp.warnings)


def test_strict_providers_refuse(tmp_path):
    from inspector_client import InspectorClient

    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    server = start_server(InspectorConfig(store_dir=tmp_path / "s", strict_providers=True), port=0)
    try:
        with InspectorClient(server.address, timeout=60) as c:
            with pytest.raises(grpc.RpcError) as err:
                c.load_model(small_cnn(seed=62).SerializeToString(), providers=["cuda"])
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "CUDA" in err.value.details()
            assert c.list_models() == []  # nothing half-stored
    finally:
        server.stop(0)
