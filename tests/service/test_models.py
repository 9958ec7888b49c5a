"""Model store over gRPC: upload, server paths, names, info, unload, restart."""

import hashlib

import grpc
import numpy as np
import onnx
import pytest
from factory import small_cnn
from inspector_client import InspectorClient


def test_upload_list_info_unload(client):
    model = small_cnn(seed=11)
    data = model.SerializeToString()
    info = client.load_model(data, name="cnn-11")
    assert info.id == hashlib.sha256(data).hexdigest()
    assert info.name == "cnn-11"
    assert [t.name for t in info.inputs] == ["input"] and info.inputs[0].shape == ("N", 3, 32, 32)
    assert info.outputs[0].name == "logits" and info.outputs[0].shape == ("N", 10)
    assert info.opsets["ai.onnx"] == 17 and info.differentiable and not info.blocking_ops
    by_name = {layer.name: layer for layer in info.layers}
    conv1 = by_name["conv1"]
    assert conv1.op_type == "Conv" and conv1.has_weights
    assert conv1.parameter_count == 8 * 3 * 3 * 3 + 8
    assert conv1.outputs[0].shape == ("N", 8, 32, 32)
    assert info.id in {m.id for m in client.list_models()}
    assert client.model_info("cnn-11").id == info.id
    assert client.model_info(info.id[:12]).id == info.id
    assert client.unload_model("cnn-11") == info.id
    with pytest.raises(grpc.RpcError) as err:
        client.model_info(info.id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_upload_from_path_streams_in_chunks(client, tmp_path):
    path = tmp_path / "m.onnx"
    # a model larger than one upload chunk and than the 4 MiB default message limit
    model = small_cnn(seed=12)
    big = np.random.default_rng(0).standard_normal((1_500_000,)).astype(np.float32)
    model.graph.initializer.append(onnx.numpy_helper.from_array(big, "unused_big"))
    onnx.save(model, path)
    info = client.load_model(path)
    assert info.size_bytes == path.stat().st_size > 5_000_000
    assert info.id == hashlib.sha256(path.read_bytes()).hexdigest()


def test_server_path_is_confined_to_model_roots(client, server, tmp_path):
    inside = server.model_root / "inside.onnx"
    onnx.save(small_cnn(seed=13), inside)
    info = client.load_model(server_path=str(inside), name="inside")
    assert info.name == "inside"
    outside = tmp_path / "outside.onnx"
    onnx.save(small_cnn(seed=14), outside)
    for bad in (str(outside), str(server.model_root / ".." / "outside.onnx"), "/etc/passwd"):
        with pytest.raises(grpc.RpcError) as err:
            client.load_model(server_path=bad)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "model root" in err.value.details()


@pytest.mark.parametrize("payload", [b"", b"not a model at all", small_cnn().SerializeToString()[:200]])
def test_garbage_models_are_invalid_argument_and_not_stored(client, payload):
    before = {m.id for m in client.list_models()}
    with pytest.raises(grpc.RpcError) as err:
        client.load_model(payload)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {m.id for m in client.list_models()} == before


def test_unknown_model_is_not_found(client):
    with pytest.raises(grpc.RpcError) as err:
        client.infer("no-such-model", np.zeros((1, 3, 32, 32), np.float32))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-model" in err.value.details()


def test_restart_restores_models(tmp_path):
    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    config = InspectorConfig(store_dir=tmp_path / "store")
    first = start_server(config, port=0)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    try:
        with InspectorClient(first.address, timeout=60) as c:
            info = c.load_model(small_cnn(seed=15).SerializeToString(), name="keep",
                                preprocess={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})
            before = c.infer("keep", x)["logits"]
    finally:
        first.stop(grace=0)
    second = start_server(config, port=0)
    try:
        with InspectorClient(second.address, timeout=60) as c:
            again = c.model_info("keep")
            assert again.id == info.id
            assert again.preprocess["mean"] == [0.5, 0.5, 0.5]
            np.testing.assert_array_equal(c.infer("keep", x)["logits"], before)
    finally:
        second.stop(grace=0)
