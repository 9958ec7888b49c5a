"""Maximize through a real server: progress streams, results reproduce, cancelling frees the worker."""

import io
import time

import grpc
import numpy as np
import pytest
from factory import small_cnn
from PIL import Image


def test_maximize_streams_progress_and_reproduces(client):
    client.load_model(small_cnn(seed=51).SerializeToString(), name="max-cnn")
    events = []
    result = client.maximize("max-cnn", "relu2_out", [0, 3], steps=40, preview_every=10, on_progress=events.append)
    assert [e.step for e in events] == list(range(1, 41))
    assert all(len(e.values) == 2 for e in events)
    assert sum(1 for e in events if e.previews) == 4
    assert result.objective.shape == (40, 2) and len(result.pngs) == 2
    assert Image.open(io.BytesIO(result.pngs[0])).size == (32, 32)
    assert (result.final_objective > result.initial_objective).all()
    maps = client.feature_maps("max-cnn", result.inputs, ["relu2_out"])["relu2_out"]
    np.testing.assert_allclose(maps[[0, 1], [0, 3]].mean(axis=(1, 2)), result.final_objective, rtol=1e-4)


def test_bad_layer_and_channel_are_invalid_argument(client):
    client.load_model(small_cnn(seed=51).SerializeToString(), name="max-cnn")
    for layer, channels in (("nope", [0]), ("relu2_out", [99])):
        with pytest.raises(grpc.RpcError) as err:
            client.maximize("max-cnn", layer, channels, steps=4)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_deadline_stops_the_work(tmp_path):
    from inspector_client import InspectorClient

    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    server = start_server(InspectorConfig(store_dir=tmp_path / "store"), port=0, workers=1)
    try:
        with InspectorClient(server.address) as c:
            c.load_model(small_cnn(seed=52, size=64).SerializeToString(), name="m")
            c.timeout = 1.0
            with pytest.raises(grpc.RpcError) as err:
                c.maximize("m", "relu2_out", list(range(8)), steps=100_000)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            c.timeout = 10
            t0 = time.perf_counter()
            c.infer("m", np.zeros((1, 3, 64, 64), np.float32))  # needs the only worker
            assert time.perf_counter() - t0 < 3.0
    finally:
        server.stop(0)
