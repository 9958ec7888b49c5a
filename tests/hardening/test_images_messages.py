"""Hostile images and error texts over the service: defined codes, no server paths leak."""

from __future__ import annotations

import io
import re

import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from factory import declared_png
from inspector_client import InspectorClient
from models import custom_op_model
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

LEAK = re.compile(r"\.(?:cc|cpp|h|hpp|cu):\d+|onnxruntime_src|/home/|/usr/|site-packages")


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_hostile_images(make_server, small_model_bytes):
    running = make_server(vetting=False, max_image_pixels=10_000, max_image_bytes=50_000)
    rng = np.random.default_rng(0)
    with InspectorClient(running.address, timeout=60) as client:
        model = client.load_model(small_model_bytes).id
        image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        want = ort.InferenceSession(small_model_bytes).run(
            None, {"input": (image.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)})[0]
        np.testing.assert_allclose(next(iter(client.infer(model, _png(image)).values())), want,
                                   rtol=1e-5, atol=1e-6)
        cases = {
            "pixel limit": _png(np.zeros((200, 200, 3), np.uint8)),
            "-byte limit": rng.integers(0, 256, 60_000, dtype=np.uint8).tobytes(),
            "decompression bomb": declared_png(100_000, 100_000),
            "could not be decoded": _png(image)[:200],
            "not an image": b"GIF89a? certainly not" * 10,
            "empty": b"",
        }
        for expected, data in cases.items():
            err = _error(lambda d=data: client.infer(model, d))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (expected, err)
            assert expected.lower() in err.details().lower(), (expected, err.details())
        np.testing.assert_allclose(next(iter(client.infer(model, _png(image)).values())), want,
                                   rtol=1e-5, atol=1e-6)  # still serving, same answer


def _reshape_model() -> bytes:
    """Reshape to a fixed [1, 100]: fails inside an ORT kernel on any real input."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="bad_reshape")], "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 100])],
        initializer=[numpy_helper.from_array(np.array([1, 100], np.int64), "shape")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def _failing_calls(client: InspectorClient, roots, model_bytes: bytes) -> list:
    """Calls that must fail: ORT kernel error, unknown op, garbage, paths, ids, layers, versions."""
    reshape = client.load_model(_reshape_model()).id  # loads; fails when it runs
    zeros = np.zeros((1, 3, 8, 8), np.float32)
    calls = [lambda: client.infer(reshape, zeros),
             lambda: client.load_model(custom_op_model().SerializeToString()),
             lambda: client.load_model(b"\x08\x07garbage"),
             lambda: client.load_model(server_path="/etc/passwd"),
             lambda: client.load_model(server_path=str(roots / "absent.onnx")),
             lambda: client.model_info("0" * 64),
             lambda: client.feature_maps(reshape, zeros, ["nope"])]
    for version_field in ("ir_version", "opset"):
        future = onnx.load_from_string(model_bytes)
        if version_field == "ir_version":
            future.ir_version = 99
        else:
            future.opset_import[0].version = 99
        calls.append(lambda m=future: client.load_model(m.SerializeToString()))
    return calls


def test_error_details_hold_no_server_paths(make_server, small_model_bytes, tmp_path):
    roots = tmp_path / "model_root"
    roots.mkdir()
    details: list[str] = []
    for vetting in (True, False):
        running = make_server(vetting=vetting, model_roots=(roots,))
        secrets = (str(running.inspector.store.root), str(roots), str(tmp_path))
        with InspectorClient(running.address, timeout=60) as client:
            for call in _failing_calls(client, roots, small_model_bytes):
                err = _error(call)
                assert err.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), err
                text = err.details().replace(str(roots / "absent.onnx"), "<their own path>")
                assert not any(s in text for s in secrets), text
                assert not LEAK.search(text), text
                details.append(text)
    assert any("bad_reshape" in d for d in details)  # the reshape failure names the node
