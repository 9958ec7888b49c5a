"""The /v2 REST routes through the real tritonclient[http] (binary tensor data and JSON data),
plus raw JSON requests with httpx: health, metadata, inference equal to onnxruntime, intermediate
tensors, FP16, statistics, the repository extension, errors and bearer tokens."""

from __future__ import annotations

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.http as th
from factory import small_cnn
from oip_models import reference
from tritonclient.utils import InferenceServerException

from inspector.config import InspectorConfig
from inspector.service.server import start_server

X = np.random.default_rng(9).standard_normal((2, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def client(oip_server):
    c = th.InferenceServerClient(oip_server.http.url.split("://", 1)[1])
    for name in ("cnn", "half", "two"):
        c.load_model(name)
    yield c
    c.close()


@pytest.fixture(scope="module")
def http(oip_server):
    with httpx.Client(base_url=oip_server.http.url, timeout=60) as h:
        yield h


def _input(name, arr, datatype, binary=True):
    i = th.InferInput(name, list(arr.shape), datatype)
    i.set_data_from_numpy(arr, binary_data=binary)
    return i


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "inspector"
    meta = client.get_model_metadata("cnn")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert client.get_model_metadata("cnn", model_version="1")["versions"] == ["1"]
    assert client.is_model_ready("cnn") and not client.is_model_ready("no_such_model")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_and_intermediate_equal_onnxruntime(client, binary):
    model = small_cnn(seed=4)
    node, out = model.graph.node[2], model.graph.output[0].name
    result = client.infer("cnn", [_input("input", X, "FP32", binary)],
                          outputs=[th.InferRequestedOutput(node.name, binary_data=binary),
                                   th.InferRequestedOutput(out, binary_data=binary)])
    want = reference(model, {"input": X}, [node.output[0], out])
    np.testing.assert_allclose(result.as_numpy(node.name), want[node.output[0]], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.as_numpy(out), want[out], rtol=1e-5, atol=1e-5)
    assert [o["name"] for o in result.get_response()["outputs"]] == [node.name, out]


def test_fp16_binary(client, oip_server):
    model = onnx.load(oip_server.model_root / "half" / "1" / "model.onnx")
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float16)
    result = client.infer("half", [_input("x", x, "FP16")], outputs=[th.InferRequestedOutput("y")])
    assert result.as_numpy("y").dtype == np.float16
    np.testing.assert_array_equal(result.as_numpy("y"), reference(model, {"x": x}, ["y"])["y"])


def test_json_request_by_hand(http, oip_server):
    """The REST spec's JSON: nested typed data, every input by name, outputs as typed data."""
    model = onnx.load(oip_server.model_root / "two" / "model.onnx")
    image = np.linspace(-1, 1, 3 * 8 * 8, dtype=np.float32).reshape(1, 3, 8, 8)
    body = {"id": "j1", "inputs": [
        {"name": "image", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": image.tolist()},
        {"name": "scale", "shape": [1, 1], "datatype": "FP32", "data": [3.0]},
        {"name": "steps", "shape": [1], "datatype": "INT64", "data": [7]}],
        "outputs": [{"name": "out"}, {"name": "count"}]}
    r = http.post("/v2/models/two/infer", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["id"] == "j1" and answer["model_name"] == "two"
    got = {o["name"]: o for o in answer["outputs"]}
    want = reference(model, {"image": image, "scale": np.array([[3.0]], np.float32),
                             "steps": np.array([7], np.int64)}, ["out", "count"])
    assert got["out"]["datatype"] == "FP32" and got["out"]["shape"] == [1, 3]
    np.testing.assert_allclose(np.array(got["out"]["data"]).reshape(1, 3), want["out"], rtol=1e-6)
    assert got["count"]["data"] == [7.0]


def test_statistics(client):
    def success(s):
        return s["inference_stats"]["success"]["count"]

    before = client.get_inference_statistics("cnn")["model_stats"][0]
    for _ in range(2):
        client.infer("cnn", [_input("input", X, "FP32")])
    with pytest.raises(InferenceServerException):
        client.infer("cnn", [_input("input", X, "FP32")], outputs=[th.InferRequestedOutput("nope")])
    after = client.get_inference_statistics("cnn")["model_stats"][0]
    assert success(after) - success(before) == 2
    assert after["inference_stats"]["fail"]["count"] - before["inference_stats"]["fail"]["count"] == 1
    assert after["inference_stats"]["compute_infer"]["ns"] > before["inference_stats"]["compute_infer"]["ns"]
    assert after["inference_count"] - before["inference_count"] == 2 * len(X)
    assert {"cnn", "half", "two"} <= {s["name"] for s in client.get_inference_statistics()["model_stats"]}


def test_repository(client, oip_server):
    onnx.save(small_cnn(seed=12), oip_server.model_root / "rest_extra.onnx")
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["rest_extra"]["state"] == "UNAVAILABLE"
    client.load_model("rest_extra")
    assert client.is_model_ready("rest_extra")
    client.unload_model("rest_extra")
    assert not client.is_model_ready("rest_extra")
    assert {m["name"]: m for m in client.get_model_repository_index()}["rest_extra"]["reason"] == "unloaded"
    with pytest.raises(InferenceServerException) as exc:
        client.infer("rest_extra", [_input("input", X, "FP32")])
    assert exc.value.status() == "503" and "unloaded" in exc.value.message()
    client.load_model("rest_extra")
    client.infer("rest_extra", [_input("input", X, "FP32")])
    client.load_model("rest_sent", config="{}", files={"file:1/model.onnx": small_cnn(seed=13).SerializeToString()})
    assert client.is_model_ready("rest_sent")


def test_errors(client, http):
    x = _input("input", X, "FP32")
    cases = [(lambda: client.infer("no_such_model", [x]), "404", "no_such_model"),
             (lambda: client.get_model_metadata("no_such_model"), "404", "no_such_model"),
             (lambda: client.load_model("no_such_model"), "404", "no_such_model"),
             (lambda: client.infer("cnn", [x], outputs=[th.InferRequestedOutput("nope")]), "400", "'nope'"),
             (lambda: client.infer("cnn", [_input("input", X.astype(np.float64), "FP64")]), "400", "FP64")]
    for fn, status, word in cases:
        with pytest.raises(InferenceServerException) as exc:
            fn()
        assert exc.value.status() == status and word in exc.value.message(), exc.value
    for body, word in [(b"{", "not JSON"), (b'{"inputs": 3}', "inputs"),
                       (b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32"}]}', "no data")]:
        r = http.post("/v2/models/cnn/infer", content=body)
        assert r.status_code == 400 and word in r.json()["error"], r.text
    head = (b'{"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", '
            b'"parameters": {"binary_data_size": 99}}]}')
    r = http.post("/v2/models/cnn/infer", content=head + b"\0" * 12,
                  headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 400 and "binary" in r.json()["error"], r.text


def test_bearer_tokens(tmp_path):
    server = start_server(InspectorConfig(store_dir=tmp_path / "store", intra_op_threads=2, auth_tokens=("s3cret",)),
                          port=0, http_port=0)
    try:
        url = server.http.url.split("://", 1)[1]
        with th.InferenceServerClient(url) as plain:
            assert plain.is_server_live()  # health stays open
            with pytest.raises(InferenceServerException) as exc:
                plain.get_server_metadata()
            assert exc.value.status() == "401"
        with th.InferenceServerClient(url) as c:
            assert c.get_server_metadata(headers={"Authorization": "Bearer s3cret"})["name"] == "inspector"
        import tritonclient.grpc as tg

        with tg.InferenceServerClient(server.address) as g:
            with pytest.raises(InferenceServerException) as exc:
                g.is_server_live()
            assert exc.value.status() == "StatusCode.UNAUTHENTICATED"
            assert g.is_server_live(headers={"authorization": "Bearer s3cret"})
    finally:
        server.stop(grace=1.0)
