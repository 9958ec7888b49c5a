"""Request ids, structured call logs, and the Prometheus endpoint scraped over HTTP."""

from __future__ import annotations

import io
import json
import logging
import re
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from inspector_client import InspectorClient

from inspector.service.metrics import BUCKETS_S, JsonFormatter, RequestIdFilter
from inspector.v1 import inspector_pb2 as pb
from inspector.v1 import inspector_pb2_grpc as pb_grpc


class _Samples(dict):
    """Samples by name and labels, whatever order the exposition writes the labels in."""

    @staticmethod
    def key(sample: str) -> str:
        name, _, labels = sample.partition("{")
        return name + ("{" + ",".join(sorted(labels.rstrip("}").split(","))) + "}" if labels else "")

    def __getitem__(self, sample: str) -> float:
        return super().__getitem__(self.key(sample))


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = _Samples()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[_Samples.key(name)] = float(value)
    return samples


def test_metrics_endpoint_counts_calls(make_server, small_model_bytes):
    running = make_server(vetting=False, metrics_port=0)
    x = np.zeros((1, 3, 32, 32), np.float32)
    with InspectorClient(running.address, timeout=60) as client:
        model = client.load_model(small_model_bytes).id
        for _ in range(2):
            client.list_models()
        with pytest.raises(grpc.RpcError):
            client.model_info("no-such-model")
        before = running.inspector.sessions.stats()
        for _ in range(3):
            client.infer(model, x)
        after = running.inspector.sessions.stats()
    samples = _scrape(running.metrics_port)
    assert samples['inspector_rpc_total{rpc="ListModels",code="OK"}'] == 2
    assert samples['inspector_rpc_total{rpc="GetModelInfo",code="NOT_FOUND"}'] == 1
    assert samples['inspector_rpc_total{rpc="Infer",code="OK"}'] == 3
    buckets = [samples[f'inspector_rpc_seconds_bucket{{rpc="Infer",le="{b}"}}'] for b in (*BUCKETS_S, "+Inf")]
    assert buckets == sorted(buckets) and buckets[-1] == samples['inspector_rpc_seconds_count{rpc="Infer"}'] == 3
    assert samples['inspector_rpc_seconds_sum{rpc="Infer"}'] > 0
    assert after["hits"] - before["hits"] >= 3  # each infer found its session cached
    assert samples["inspector_session_cache_hits_total"] == running.inspector.sessions.stats()["hits"]
    assert samples["inspector_session_cache_misses_total"] == after["misses"]
    # the standard gRPC server names and process metrics, from prometheus_client
    assert samples['grpc_server_handled_total{grpc_service="inspector.v1.Inspector",grpc_method="Infer",'
                   'grpc_code="OK"}'] == 3
    assert samples['grpc_server_started_total{grpc_service="inspector.v1.Inspector",grpc_method="Infer"}'] == 3
    assert samples["process_resident_memory_bytes"] > 0
    assert samples["inspector_queue_depth"] == 0 and samples["inspector_calls_running"] == 0
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/other", timeout=10)
    assert info.value.code == 404


def test_request_id_in_header_and_every_log_line(make_server):
    running = make_server(vetting=False)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("inspector")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with grpc.insecure_channel(running.address) as channel:
            stub = pb_grpc.InspectorStub(channel)
            _, call = stub.ListModels.with_call(pb.ListModelsRequest(), timeout=10)
            ok_id = dict(call.initial_metadata())["x-request-id"]
            with pytest.raises(grpc.RpcError) as info:
                stub.GetModelInfo(pb.ModelRef(model="no-such-model"), timeout=10)
            bad_id = dict(info.value.initial_metadata())["x-request-id"]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert re.fullmatch(r"[0-9a-f]{12}", ok_id) and ok_id != bad_id
    done = {r["request_id"]: r for r in records if r["logger"] == "inspector.service.calls"}
    assert done[ok_id]["rpc"] == "ListModels" and done[ok_id]["code"] == "OK"
    assert done[bad_id]["code"] == "NOT_FOUND" and done[bad_id]["ms"] >= 0
    failure = [r for r in records if r["logger"] == "inspector.service" and r["request_id"] == bad_id]
    assert failure and bad_id in failure[0]["message"] and "NOT_FOUND" in failure[0]["message"]


def test_a_callers_own_request_id_is_kept(make_server):
    running = make_server(vetting=False)
    with grpc.insecure_channel(running.address) as channel:
        stub = pb_grpc.InspectorStub(channel)
        _, call = stub.ListModels.with_call(pb.ListModelsRequest(), timeout=10,
                                            metadata=(("x-request-id", "billing-7f3a"),))
        assert dict(call.initial_metadata())["x-request-id"] == "billing-7f3a"
        _, call = stub.ListModels.with_call(pb.ListModelsRequest(), timeout=10,
                                            metadata=(("x-request-id", "x" * 200),))  # too long: ours instead
        assert re.fullmatch(r"[0-9a-f]{12}", dict(call.initial_metadata())["x-request-id"])
