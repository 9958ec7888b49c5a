"""Bounded fuzzing over a real server: every case gets a defined status; the server stays up.

About 150 cases in all; scripts/fuzz.py runs the same strategies for longer.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from fuzz_cases import (
    DEFINED,
    call,
    image_bytes,
    mutated_models,
    random_requests,
    status_of,
    tiny_model,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from inspector_client import InspectorClient


def fuzz(cases: int) -> settings:
    """Deterministic, bounded, no example database, no per-example deadline."""
    return settings(max_examples=cases, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from factory import small_cnn

    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    config = InspectorConfig(store_dir=tmp_path_factory.mktemp("fuzz") / "store", intra_op_threads=1,
                             vet_timeout_s=10, max_concurrent=2)
    running = start_server(config, port=0)
    client = InspectorClient(running.address, timeout=30)
    running.ids = [client.load_model(small_cnn().SerializeToString()).id,
                   client.load_model(tiny_model().SerializeToString()).id]
    running.client = client
    running.channel = grpc.insecure_channel(running.address)
    yield running
    running.channel.close()
    client.close()
    running.stop(grace=1.0)


def _healthy(running) -> None:
    stub = health_pb2_grpc.HealthStub(running.channel)
    assert stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
        health_pb2.HealthCheckResponse.SERVING


def test_fuzz_model_bytes(fuzz_server):
    seen: dict[str, int] = {}

    @fuzz(40)
    @given(data=mutated_models(tiny_model().SerializeToString()))
    def case(data: bytes) -> None:
        accepted = []
        code = status_of(lambda: accepted.append(fuzz_server.client.load_model(data).id))
        seen[code] = seen.get(code, 0) + 1
        assert code in DEFINED, code
        if code == "OK":  # accepted: it must run (or refuse the input) and then go away again
            model = accepted[0]
            ran = status_of(lambda: fuzz_server.client.infer(model, np.zeros((1, 3, 16, 16), np.float32)))
            assert ran in DEFINED, ran
            if model not in fuzz_server.ids:
                fuzz_server.client.unload_model(model)
        _healthy(fuzz_server)

    case()
    fuzz_server.seen_models = seen
    assert sum(seen.values()) == 40 and len(seen) >= 2  # both accepted and refused mutants occurred


def test_fuzz_requests(fuzz_server):
    seen: dict[str, int] = {}

    @fuzz(90)
    @given(case=random_requests(["0" * 64]))
    def case(case) -> None:
        method, request = case
        if method.name != "UnloadModel":  # unloading the real models would end the interesting part
            request = _with_ids(request, fuzz_server.ids)
        code = call(fuzz_server.channel, method, request, timeout=10)
        seen[code] = seen.get(code, 0) + 1
        assert code in DEFINED, (method.name, code, request)
        _healthy(fuzz_server)

    case()
    assert sum(seen.values()) == 90 and "INVALID_ARGUMENT" in seen


def _with_ids(request, ids: list[str]):
    """Point fuzzed `model` fields at the real models ("0"*64 stands for 'a real one')."""
    messages = request if isinstance(request, list) else [request]
    for i, message in enumerate(messages):
        for owner in (message, getattr(message, "header", None)):
            if owner is not None and hasattr(owner, "model") and owner.model.startswith("0" * 8):
                owner.model = ids[i % len(ids)] if owner.model == "0" * 64 else ids[0][:8]
    return request


def test_fuzz_images(fuzz_server):
    seen: dict[str, int] = {}

    @fuzz(30)
    @given(data=image_bytes())
    def case(data: bytes) -> None:
        code = status_of(lambda: fuzz_server.client.infer(fuzz_server.ids[0], data))
        seen[code] = seen.get(code, 0) + 1
        assert code in DEFINED - {"DEADLINE_EXCEEDED"}, code
        _healthy(fuzz_server)

    case()
    assert seen.get("OK", 0) >= 1 and seen.get("INVALID_ARGUMENT", 0) >= 1
