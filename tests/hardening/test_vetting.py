"""Untrusted models over the service: refused with a reason, and the server keeps serving."""

from __future__ import annotations

import shutil
import time

import grpc
import numpy as np
import onnx
import pytest
from conftest import third_party_model
from inspector_client import InspectorClient
from models import custom_op_model, loop_model, memory_bomb, untyped_output_model
from onnx import helper

from inspector.store.vetting import SELF_KILL_ENV, _dummy_shape, spatial_size


def _refusal(client: InspectorClient, data: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        client.load_model(data)
    return info.value


def _still_serving(client: InspectorClient, model_bytes: bytes) -> None:
    """The server answers, holds only what was accepted, and runs a good model correctly."""
    info = client.load_model(model_bytes)
    x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    import onnxruntime as ort

    expected = ort.InferenceSession(model_bytes).run(None, {"input": x})[0]
    got = client.infer(info.id, x)
    np.testing.assert_allclose(next(iter(got.values())), expected, rtol=1e-5, atol=1e-6)


def test_hostile_models_are_refused_and_the_server_lives(make_server, small_model_bytes, monkeypatch):
    running = make_server(vet_timeout_s=3.0, vet_memory_bytes=2 << 30)
    with InspectorClient(running.address, timeout=60) as client:
        started = time.perf_counter()
        err = _refusal(client, loop_model(10**9).SerializeToString())
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "within 3 s" in err.details()
        assert time.perf_counter() - started < 10

        err = _refusal(client, memory_bomb().SerializeToString())
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "needs more than 2048 MiB" in err.details()

        monkeypatch.setenv(SELF_KILL_ENV, "1")
        err = _refusal(client, small_model_bytes)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "crashed (signal SIGKILL)" in err.details()
        monkeypatch.delenv(SELF_KILL_ENV)

        err = _refusal(client, custom_op_model().SerializeToString())
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "com.example:FooBar" in err.details() and str(running.inspector.store.root) not in err.details()

        assert client.list_models() == []  # nothing refused stays in the store
        assert sorted(p.name for p in running.inspector.store.root.iterdir()) == [".tmp"]
        _still_serving(client, small_model_bytes)


def test_checker_policy(make_server):
    """Cosmetic checker complaints pass (ORT runs the model); structural garbage is refused."""
    running = make_server()
    with InspectorClient(running.address, timeout=60) as client:
        info = client.load_model(untyped_output_model().SerializeToString())
        x = np.linspace(-1, 1, 192, dtype=np.float32).reshape(1, 3, 8, 8)
        np.testing.assert_array_equal(client.infer(info.id, x)["y"], np.maximum(x, 0))

        broken = untyped_output_model()
        broken.graph.node[0].input[0] = "nowhere"  # an input nothing produces
        broken.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None))
        err = _refusal(client, broken.SerializeToString())
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid ONNX model" in err.details() and "nowhere" in err.details()

        future = untyped_output_model()
        future.ir_version = 99
        err = _refusal(client, future.SerializeToString())
        assert "IR version 99" in err.details()
        future = untyped_output_model()
        future.opset_import[0].version = 99
        err = _refusal(client, future.SerializeToString())
        assert "opset 99" in err.details()


def test_size_bounds(make_server, small_model_bytes, tmp_path):
    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / "m.onnx").write_bytes(small_model_bytes)
    running = make_server(max_upload_bytes=len(small_model_bytes) - 1, model_roots=(roots,))
    with InspectorClient(running.address, timeout=60) as client:
        assert _refusal(client, small_model_bytes).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as info:
            client.load_model(server_path=str(roots / "m.onnx"))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"limit of {len(small_model_bytes) - 1} bytes" in info.value.details()
        assert client.list_models() == []


def test_external_data_stays_in_the_models_folder(make_server, tmp_path):
    """A location leaving the folder is refused whether uploaded or loaded from a model root."""
    roots, outside = tmp_path / "roots", tmp_path / "outside"
    roots.mkdir()
    outside.mkdir()
    from factory import small_cnn

    model = small_cnn()
    onnx.save(small_cnn(), str(roots / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    shutil.copy(roots / "weights.bin", outside / "secret.bin")
    evil = onnx.load(str(roots / "ext.onnx"), load_external_data=False)
    for tensor in evil.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside/secret.bin"
    onnx.save(evil, str(roots / "evil.onnx"))
    running = make_server(model_roots=(roots,))
    with InspectorClient(running.address, timeout=60) as client:
        good = client.load_model(server_path=str(roots / "ext.onnx"))  # in-folder data is fine
        x = np.random.default_rng(2).random((1, 3, 32, 32), dtype=np.float32)
        import onnxruntime as ort

        want = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
        np.testing.assert_allclose(next(iter(client.infer(good.id, x).values())), want, rtol=1e-5)
        with pytest.raises(grpc.RpcError) as info:
            client.load_model(server_path=str(roots / "evil.onnx"))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "'..'" in info.value.details()
        assert str(tmp_path) not in info.value.details()
        err = _refusal(client, (roots / "evil.onnx").read_bytes())
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "external data" in err.details()
        assert [m.id for m in client.list_models()] == [good.id]


def test_real_models_pass_vetting(make_server):
    running = make_server()
    with InspectorClient(running.address, timeout=120) as client:
        for relative in ("nudenet/320n.onnx",
                         "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"):
            path = third_party_model(relative)
            started = time.perf_counter()
            info = client.load_model(path.read_bytes())
            assert info.id and time.perf_counter() - started < 10


def test_dummy_input_shapes():
    assert _dummy_shape(["N", 3, "H", "W"], (48, 192)) == [1, 3, 48, 192]
    assert _dummy_shape(["N", "C", 32, 32], (64, 64)) == [1, 3, 32, 32]
    assert _dummy_shape(["batch", "seq"], (64, 64)) == [1, 1]
    assert _dummy_shape([2, "T", "F"], (8, 9)) == [2, 8, 9]
    assert spatial_size({"resize": 256, "crop": [224, 200]}) == (224, 200)
    assert spatial_size({"resize": [48, 192]}) == (48, 192)
    assert spatial_size(None) == (64, 64)
