"""inference.GRPCInferenceService through the real tritonclient[grpc]: health, metadata,
inference equal to plain onnxruntime (outputs, intermediate tensors, FP16 raw, several inputs),
statistics, the repository extension and errors as statuses."""

from __future__ import annotations

import grpc
import numpy as np
import onnx
import pytest
import tritonclient.grpc as tc
from factory import small_cnn
from oip_models import reference
from tritonclient.utils import InferenceServerException

from inspector.kserve import grpc_service_pb2 as pb
from inspector.kserve import grpc_service_pb2_grpc as pb_grpc

X = np.random.default_rng(8).standard_normal((2, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def client(oip_server):
    c = tc.InferenceServerClient(oip_server.address)
    for name in ("cnn", "half", "two"):
        c.load_model(name)
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(oip_server):
    with grpc.insecure_channel(oip_server.address) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def _input(name, arr, datatype):
    i = tc.InferInput(name, list(arr.shape), datatype)
    i.set_data_from_numpy(arr)
    return i


def _code(exc: InferenceServerException) -> str:
    return exc.status()


def test_health_and_server_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "inspector"
    assert {"model_repository", "statistics", "inspector_intermediate_outputs"} <= set(meta["extensions"])


def test_model_metadata(client):
    meta = client.get_model_metadata("cnn", as_json=True)
    assert meta["name"] == "cnn" and meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "3", "32", "32"]}]
    assert meta["outputs"][0]["datatype"] == "FP32"
    half = client.get_model_metadata("half", model_version="1", as_json=True)
    assert half["inputs"][0]["datatype"] == "FP16" and half["outputs"][0]["datatype"] == "FP16"


def test_infer_equals_onnxruntime(client):
    model = small_cnn(seed=4)
    out = model.graph.output[0].name
    result = client.infer("cnn", [_input("input", X, "FP32")], outputs=[tc.InferRequestedOutput(out)], request_id="r1")
    want = reference(model, {"input": X}, [out])[out]
    np.testing.assert_allclose(result.as_numpy(out), want, rtol=1e-5, atol=1e-5)
    assert result.get_response().id == "r1" and result.get_response().model_name == "cnn"
    every = client.infer("cnn", [_input("input", X, "FP32")])  # no outputs asked: every model output
    assert [o.name for o in every.get_response().outputs] == [o.name for o in model.graph.output]


def test_intermediate_tensors_as_outputs(client):
    """A node name and a tensor name from the layer table, next to a model output, in the order asked."""
    model = small_cnn(seed=4)
    node = model.graph.node[2]  # a Relu: named by its node name
    tensor = model.graph.node[0].output[0]  # the first conv's output: named by its tensor name
    out = model.graph.output[0].name
    asked = [node.name, tensor, out]
    result = client.infer("cnn", [_input("input", X, "FP32")], outputs=[tc.InferRequestedOutput(n) for n in asked])
    assert [o.name for o in result.get_response().outputs] == asked
    want = reference(model, {"input": X}, [node.output[0], tensor, out])
    np.testing.assert_allclose(result.as_numpy(node.name), want[node.output[0]], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.as_numpy(tensor), want[tensor], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.as_numpy(out), want[out], rtol=1e-5, atol=1e-5)


def test_fp16_raw_in_and_out(client, oip_server):
    model = onnx.load(oip_server.model_root / "half" / "1" / "model.onnx")
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float16)
    result = client.infer("half", [_input("x", x, "FP16")],
                          outputs=[tc.InferRequestedOutput("y"), tc.InferRequestedOutput("act")])
    outs = {o.name: o for o in result.get_response().outputs}
    assert outs["y"].datatype == "FP16" and outs["act"].datatype == "FP16"
    want = reference(model, {"x": x}, ["y", "a"])
    assert result.as_numpy("y").dtype == np.float16
    np.testing.assert_array_equal(result.as_numpy("y"), want["y"])
    np.testing.assert_array_equal(result.as_numpy("act"), want["a"])


def test_every_input_by_name(client, oip_server):
    model = onnx.load(oip_server.model_root / "two" / "model.onnx")
    rng = np.random.default_rng(2)
    feeds = {"image": rng.standard_normal((3, 3, 8, 8)).astype(np.float32),
             "scale": rng.standard_normal((3, 1)).astype(np.float32), "steps": np.array([1, 5, 9], np.int64)}
    inputs = [_input("steps", feeds["steps"], "INT64"), _input("scale", feeds["scale"], "FP32"),
              _input("image", feeds["image"], "FP32")]  # any order
    result = client.infer("two", inputs, outputs=[tc.InferRequestedOutput(n) for n in ("out", "count", "gap")])
    want = reference(model, feeds, ["out", "count", "pooled"])
    np.testing.assert_allclose(result.as_numpy("out"), want["out"], rtol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("count"), want["count"])
    np.testing.assert_allclose(result.as_numpy("gap"), want["pooled"], rtol=1e-6)


def test_typed_contents_and_parameters(stub, oip_server):
    """A request with typed contents (no raw), request parameters and an INT64 input answers raw."""
    model = onnx.load(oip_server.model_root / "two" / "model.onnx")
    image = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8) / 100
    req = pb.ModelInferRequest(model_name="two", id="typed")
    req.parameters["priority"].int64_param = 1
    req.inputs.add(name="image", datatype="FP32", shape=[2, 3, 8, 8]).contents.fp32_contents.extend(image.ravel())
    req.inputs.add(name="scale", datatype="FP32", shape=[2, 1]).contents.fp32_contents.extend([2.0, -1.0])
    req.inputs.add(name="steps", datatype="INT64", shape=[2]).contents.int64_contents.extend([3, 4])
    req.outputs.add(name="out")
    resp = stub.ModelInfer(req)
    assert resp.id == "typed" and [o.name for o in resp.outputs] == ["out"]
    got = np.frombuffer(resp.raw_output_contents[0], np.float32).reshape(tuple(resp.outputs[0].shape))
    want = reference(model, {"image": image, "scale": np.array([[2.0], [-1.0]], np.float32),
                             "steps": np.array([3, 4], np.int64)}, ["out"])["out"]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def _stats(client, name):
    return client.get_inference_statistics(name, as_json=True)["model_stats"][0]


def test_statistics_count_requests_and_time(client):
    before = _stats(client, "cnn")
    n = 3
    for _ in range(n):
        client.infer("cnn", [_input("input", X, "FP32")])
    with pytest.raises(InferenceServerException):
        client.infer("cnn", [_input("input", X, "FP32")], outputs=[tc.InferRequestedOutput("no_such_tensor")])
    after = _stats(client, "cnn")

    def count(s, key):
        return int(s["inference_stats"][key].get("count", 0))

    def ns(s, key):
        return int(s["inference_stats"][key].get("ns", 0))

    assert count(after, "success") - count(before, "success") == n
    assert count(after, "fail") - count(before, "fail") == 1
    assert ns(after, "fail") > ns(before, "fail")
    assert count(after, "compute_infer") - count(before, "compute_infer") == n
    assert ns(after, "compute_infer") > ns(before, "compute_infer")
    assert ns(after, "success") >= ns(after, "compute_infer")
    assert int(after["execution_count"]) - int(before.get("execution_count", 0)) == n
    assert int(after["inference_count"]) - int(before.get("inference_count", 0)) == n * len(X)
    assert int(after["last_inference"]) > 0
    every = client.get_inference_statistics(as_json=True)["model_stats"]
    assert {"cnn", "half", "two"} <= {s["name"] for s in every}


def test_repository_index_load_unload(client, oip_server):
    onnx.save(small_cnn(seed=9), oip_server.model_root / "extra.onnx")
    index = {m["name"]: m for m in client.get_model_repository_index(as_json=True)["models"]}
    assert index["cnn"]["state"] == "READY"
    assert index["extra"]["state"] == "UNAVAILABLE" and "not loaded" in index["extra"]["reason"]
    assert not client.is_model_ready("extra")
    client.load_model("extra")
    assert client.is_model_ready("extra")
    client.unload_model("extra")
    assert not client.is_model_ready("extra")
    index = {m["name"]: m for m in client.get_model_repository_index(as_json=True)["models"]}
    assert index["extra"]["state"] == "UNAVAILABLE" and index["extra"]["reason"] == "unloaded"
    ready = {m["name"] for m in client.get_model_repository_index(as_json=True).get("models", [])
             if m.get("state") == "READY"}
    assert "extra" not in ready
    with pytest.raises(InferenceServerException) as exc:
        client.infer("extra", [_input("input", X, "FP32")])
    assert _code(exc.value) == "StatusCode.UNAVAILABLE" and "unloaded" in exc.value.message()
    with pytest.raises(InferenceServerException) as exc:
        client.get_model_metadata("extra")
    assert _code(exc.value) == "StatusCode.UNAVAILABLE"
    client.load_model("extra")  # the stored model is READY again
    assert client.is_model_ready("extra")
    client.infer("extra", [_input("input", X, "FP32")])


def test_load_from_file_bytes_and_delete(client):
    data = small_cnn(seed=11).SerializeToString()
    client.load_model("sent", config='{"backend": "onnxruntime"}', files={"file:1/model.onnx": data})
    assert client.is_model_ready("sent")
    client.infer("sent", [_input("input", X, "FP32")])
    client.unload_model("sent")
    index = {m["name"] for m in client.get_model_repository_index(as_json=True)["models"]}
    assert "sent" in index
    newer = small_cnn(seed=14)
    client.load_model("sent", config="{}", files={"file:1/model.onnx": newer.SerializeToString()})  # replaces it
    assert client.is_model_ready("sent")
    out = newer.graph.output[0].name
    got = client.infer("sent", [_input("input", X, "FP32")]).as_numpy(out)
    np.testing.assert_allclose(got, reference(newer, {"input": X}, [out])[out], rtol=1e-5, atol=1e-5)


def _fails(fn, code: str, *words: str):
    with pytest.raises(InferenceServerException) as exc:
        fn()
    assert _code(exc.value) == f"StatusCode.{code}", exc.value
    for w in words:
        assert w in exc.value.message(), exc.value.message()
    return exc.value


def test_errors_are_statuses(client):
    x = _input("input", X, "FP32")
    _fails(lambda: client.infer("no_such_model", [x]), "NOT_FOUND", "no_such_model")
    _fails(lambda: client.get_model_metadata("no_such_model"), "NOT_FOUND", "no_such_model")
    _fails(lambda: client.load_model("no_such_model"), "NOT_FOUND", "no_such_model")
    _fails(lambda: client.unload_model("no_such_model"), "NOT_FOUND", "no_such_model")
    _fails(lambda: client.get_inference_statistics("no_such_model"), "NOT_FOUND", "no_such_model")
    _fails(lambda: client.get_model_metadata("cnn", model_version="7"), "NOT_FOUND", "version")
    _fails(lambda: client.infer("cnn", [x], outputs=[tc.InferRequestedOutput("nope")]), "INVALID_ARGUMENT",
           "'nope'")
    _fails(lambda: client.infer("cnn", [x], outputs=[tc.InferRequestedOutput("Conv")]), "INVALID_ARGUMENT",
           "'Conv'", "name one tensor or node")
    _fails(lambda: client.infer("cnn", [_input("input", X.astype(np.float64), "FP64")]), "INVALID_ARGUMENT",
           "'input'", "FP64", "FP32")
    _fails(lambda: client.infer("cnn", [_input("image", X, "FP32")]), "INVALID_ARGUMENT", "'image'")
    _fails(lambda: client.infer("cnn", [_input("input", X[:, :2], "FP32")]), "INVALID_ARGUMENT", "input")
    _fails(lambda: client.infer("cnn", [_input("input", X[0], "FP32")]), "INVALID_ARGUMENT", "'input'")
    two = [_input("image", np.zeros((1, 3, 8, 8), np.float32), "FP32")]
    _fails(lambda: client.infer("two", two), "INVALID_ARGUMENT", "scale", "steps")
    assert client.is_model_ready("no_such_model") is False


def test_raw_contents_checked(stub):
    req = pb.ModelInferRequest(model_name="cnn")
    req.inputs.add(name="input", datatype="FP32", shape=[1, 3, 32, 32])
    req.raw_input_contents.append(b"\0" * 12)
    with pytest.raises(grpc.RpcError) as exc:
        stub.ModelInfer(req)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'input'" in exc.value.details() and "12288 bytes" in exc.value.details()
    req = pb.ModelInferRequest(model_name="cnn")
    req.inputs.add(name="input", datatype="FP16", shape=[1])
    with pytest.raises(grpc.RpcError) as exc:
        stub.ModelInfer(req)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "raw" in exc.value.details()
    req = pb.ModelInferRequest(model_name="cnn")
    req.inputs.add(name="input", datatype="FLOAT", shape=[1])
    with pytest.raises(grpc.RpcError) as exc:
        stub.ModelInfer(req)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "FLOAT" in exc.value.details()


def test_stream_infer(client):
    """Triton's streaming extension: answers in order, a failed request answers with its error."""
    import queue

    model = small_cnn(seed=4)
    out = model.graph.output[0].name
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        client.async_stream_infer("cnn", [_input("input", X, "FP32")], request_id="s1",
                                  outputs=[tc.InferRequestedOutput(out)])
        client.async_stream_infer("cnn", [_input("input", X, "FP32")], request_id="s2",
                                  outputs=[tc.InferRequestedOutput("nope")])
        client.async_stream_infer("cnn", [_input("input", X[:1], "FP32")], request_id="s3",
                                  outputs=[tc.InferRequestedOutput(model.graph.node[2].name)])
        got = [answers.get(timeout=60) for _ in range(3)]
    finally:
        client.stop_stream()
    (r1, e1), (r2, e2), (r3, e3) = got
    assert e1 is None and r1.get_response().id == "s1"
    np.testing.assert_allclose(r1.as_numpy(out), reference(model, {"input": X}, [out])[out], rtol=1e-5, atol=1e-5)
    assert r2 is None and "'nope'" in e2.message()
    assert e3 is None and r3.as_numpy(model.graph.node[2].name).shape[0] == 1


def test_answer_over_the_message_limit_is_refused_clearly(client):
    """An answer above the gRPC message limit (4 MiB here) is RESOURCE_EXHAUSTED saying what to do."""
    model = small_cnn(seed=4)
    big = np.zeros((48, 3, 32, 32), np.float32)
    names = [n.name for n in model.graph.node[:3]]  # three [48, 8, 32, 32] tensors: 4.7 MiB
    _fails(lambda: client.infer("cnn", [_input("input", big, "FP32")], outputs=[tc.InferRequestedOutput(n) for n in names]),
           "RESOURCE_EXHAUSTED", "message limit", "fewer outputs")
