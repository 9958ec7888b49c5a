"""The HTTP edge through a real uvicorn server on a loopback port, with a real HTTP client: every
endpoint returns what the core returns (the same result types, from their JSON wire form), every
error path a JSON error with the gRPC code names, tokens and limits as on gRPC."""

import base64
import io
import json

import httpx
import numpy as np
import pytest
from factory import small_cnn
from inspector_client import types
from PIL import Image

from inspector.config import InspectorConfig
from inspector.service.server import start_server

X = np.random.default_rng(6).standard_normal((2, 3, 32, 32)).astype(np.float32)


def tensor(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, a.dtype.newbyteorder("<"))
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}


def png(seed: int) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (36, 40, 3), np.uint8)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    server = start_server(InspectorConfig(store_dir=root / "store", intra_op_threads=2, vetting=False),
                          port=0, http_port=0)
    with httpx.Client(base_url=server.http.url + "/api/v1", timeout=60) as http:
        r = http.post("/models", params={"name": "cnn"}, content=small_cnn(seed=21).SerializeToString())
        assert r.status_code == 200, r.text
        yield server, http
    server.stop(1.0)


def result(r: httpx.Response, kind):
    assert r.status_code == 200, r.text
    return kind.from_wire(types.Wire.from_json(r.json()))


def same(a, b):
    from test_same_objects import assert_same

    assert_same(a, b)


def test_models_and_methods(running):
    server, http = running
    models = http.get("/models").json()
    assert [m["name"] for m in models["models"]] == ["cnn"] and models["quarantined"] == []
    info = http.get("/models/cnn").json()
    assert info["providers"] == ["CPUExecutionProvider"] and info["differentiable"] is True
    assert {m["name"] for m in http.get("/methods").json()["methods"]} == {m["name"] for m in server.inspector.methods()}
    schema = http.get("/openapi.json").json()
    assert {"/api/v1/models/{model}/explain", "/api/v1/models/{model}/maximize"} <= set(schema["paths"])
    page = http.get("/docs")
    assert page.status_code == 200 and "openapi.json" in page.text


def test_every_call_equals_the_core(running):
    server, http = running
    core = server.inspector
    body = {"input": {"tensor": tensor(X)}}
    same(result(http.post("/models/cnn/infer", json=body), types.Inference), core.infer("cnn", X))
    fm = {**body, "layers": ["relu1"], "png": True, "stats": True, "top_k": 4}
    same(result(http.post("/models/cnn/feature-maps", json=fm), types.FeatureMaps),
         core.feature_maps("cnn", X, ["relu1"], png=True, stats=True, top_k=4))
    same(result(http.post("/models/cnn/weights", json={"layers": ["conv1"], "png": True}), types.Weights),
         core.weights("cnn", ["conv1"], png=True))
    same(result(http.post("/models/cnn/gradients", json={**body, "target": 3}), types.Gradients),
         core.gradients("cnn", X, target=3))
    exp = result(http.post("/models/cnn/explain", json={**body, "method": "gradcam", "target": [2]}),
                 types.Explanation)
    same(exp, core.explain("cnn", X, "gradcam", target=[2]))
    ev = {**body, "heatmap": tensor(exp.heatmap), "metrics": ["deletion"], "params": {"steps": 4}}
    same(result(http.post("/models/cnn/evaluate", json=ev), types.Evaluation),
         core.evaluate("cnn", X, exp.heatmap, ["deletion"], steps=4))
    images = {"input": {"images": [png(1), png(2)]}}
    same(result(http.post("/models/cnn/infer", json=images), types.Inference),
         core.infer("cnn", [base64.b64decode(png(1)), base64.b64decode(png(2))]))


def test_one_item_alone(running):
    _, http = running
    body = {"input": {"tensor": tensor(X)}, "method": "gradcam"}
    r = http.post("/models/cnn/explain", params={"item": "overlay/1"}, json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (32, 32)
    r = http.post("/models/cnn/explain", params={"item": "heatmap/heatmap"}, json=body)
    assert np.load(io.BytesIO(r.content)).shape == (2, 32, 32)
    r = http.post("/models/cnn/explain", params={"item": "nope/x"}, json=body)
    assert r.status_code == 404 and "overlay/0" in r.json()["message"]


def events(r: httpx.Response) -> list[tuple[str, dict]]:
    out, kind = [], None
    for line in r.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            out.append((kind, json.loads(line[6:])))
    return out


def test_maximize_and_audit_stream_progress_then_the_result(running):
    server, http = running
    body = {"layer": "relu2", "channels": [0, 3], "steps": 3, "preview_every": 2, "params": {"size": 32}}
    with http.stream("POST", "/models/cnn/maximize", json=body) as r:
        got = events(r)
    assert [k for k, _ in got] == ["progress"] * 3 + ["result"]
    assert [d["step"] for _, d in got[:3]] == [1, 2, 3] and set(got[1][1]["previews"]) == {"0", "1"}
    m = types.Maximization.from_wire(types.Wire.from_json(got[-1][1]))
    same(m, server.inspector.maximize("cnn", "relu2", [0, 3], steps=3, size=32))
    body = {"batches": [{"tensor": tensor(X)}, {"tensor": tensor(X[:1])}], "checkpoint_every": 1, "columnar": True}
    with http.stream("POST", "/models/cnn/audit", json=body) as r:
        got = events(r)
    assert [k for k, _ in got] == ["progress", "progress", "result"] and got[1][1]["step"] == 3
    report = types.AuditReport.from_wire(types.Wire.from_json(got[-1][1]))
    assert report.images == 3 and dict(report) == dict(server.inspector.audit("cnn", [X, X[:1]]))


@pytest.mark.parametrize("path, body, code, words", [
    ("/models/none/infer", {"input": {"tensor": tensor(X)}}, "NOT_FOUND", "none"),
    ("/models/cnn/infer", {"input": {}}, "INVALID_ARGUMENT", "input.tensor or input.images"),
    ("/models/cnn/infer", {"input": {"tensor": {"dtype": "float32", "shape": [1, 3, 32, 32], "data": "AAAA"}}},
     "INVALID_ARGUMENT", "bytes"),
    ("/models/cnn/infer", {"input": {"images": ["***"]}}, "INVALID_ARGUMENT", "base64"),
    ("/models/cnn/infer", {"inputs": 3}, "INVALID_ARGUMENT", "input"),
    ("/models/cnn/explain", {"input": {"tensor": tensor(X)}, "method": "gradcam+++"}, "INVALID_ARGUMENT",
     "known methods"),
    ("/models/cnn/feature-maps", {"input": {"tensor": tensor(X)}, "layers": ["relu_9"]}, "INVALID_ARGUMENT",
     "relu_9"),
])
def test_errors_are_json_with_the_grpc_code_names(running, path, body, code, words):
    _, http = running
    r = http.post(path, json=body)
    assert r.json()["code"] == code and words in r.json()["message"], r.text
    assert r.status_code == {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400}[code]
    assert r.headers["x-request-id"]


def test_uploads_that_are_not_models_are_refused_and_nothing_stays(running):
    _, http = running
    r = http.post("/models", params={"name": "junk"}, content=b"not an onnx model")
    assert r.status_code == 400 and r.json()["code"] == "INVALID_ARGUMENT"
    assert [m["name"] for m in http.get("/models").json()["models"]] == ["cnn"]
    r = http.post("/models", params={"preprocess": "{oops"}, content=b"x")
    assert r.status_code == 400 and "preprocess" in r.json()["message"]


def test_tokens_and_request_ids(tmp_path):
    server = start_server(InspectorConfig(store_dir=tmp_path / "store", vetting=False, auth_tokens=("s3cret",)),
                          port=0, http_port=0)
    try:
        with httpx.Client(base_url=server.http.url + "/api/v1", timeout=30) as http:
            r = http.get("/models")
            assert r.status_code == 401 and r.json()["code"] == "UNAUTHENTICATED" and "s3cret" not in r.text
            assert http.get("/models", headers={"authorization": "Bearer wrong"}).status_code == 401
            ok = http.get("/models", headers={"authorization": "Bearer s3cret", "x-request-id": "abc-123"})
            assert ok.status_code == 200 and ok.headers["x-request-id"] == "abc-123"
            assert http.get("/openapi.json").status_code == 200  # the schema is public
    finally:
        server.stop(1.0)


def test_a_client_that_goes_away_stops_a_long_maximize(running):
    import time

    server, http = running
    body = {"layer": "relu2", "channels": [0], "steps": 100000, "params": {"size": 32}}
    start = time.monotonic()
    with http.stream("POST", "/models/cnn/maximize", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # one progress event seen; leave
    deadline = time.monotonic() + 20
    while server.gate.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.gate.running == 0  # the slot came back: the work stopped
    assert time.monotonic() - start < 20
