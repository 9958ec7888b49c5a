"""Back-pressure, deadlines, graceful shutdown, response/batch caps, the memory-bounded cache."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
from inspector_client import InspectorClient
from models import loop_model

from inspector.runtime.sessions import SizedSessionCache

X = np.arange(192, dtype=np.float32).reshape(1, 3, 8, 8) / 7


def _timed_loop_iterations(seconds: float) -> int:
    """Loop iterations that take about `seconds` on this machine (measured, not assumed)."""
    import onnxruntime as ort

    session = ort.InferenceSession(loop_model(500).SerializeToString())
    started = time.perf_counter()
    session.run(None, {"x": X})
    return max(100, int(500 * seconds / (time.perf_counter() - started)))


@pytest.fixture(scope="module")
def one_second() -> int:
    return _timed_loop_iterations(1.0)


def _call(client: InspectorClient, model: str, outcomes: list, timeout: float | None = None) -> None:
    try:
        y = client.infer(model, X) if timeout is None else _infer_with_timeout(client, model, timeout)
        outcomes.append(("OK", np.array_equal(y["y"], X)))
    except grpc.RpcError as err:
        outcomes.append((err.code().name, err))


def _infer_with_timeout(client: InspectorClient, model: str, timeout: float):
    saved, client.timeout = client.timeout, timeout
    try:
        return client.infer(model, X)
    finally:
        client.timeout = saved


def _parallel(n: int, target) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def test_bounded_queue_refuses_with_retry_hint(make_server, one_second):
    running = make_server(vetting=False, max_concurrent=1, max_queued=1, retry_after_s=0.5)
    with InspectorClient(running.address, timeout=60) as client:
        model = client.load_model(loop_model(one_second).SerializeToString()).id
        outcomes: list = []
        depth: list[int] = []
        watching = threading.Event()

        def watch() -> None:
            while not watching.is_set():
                depth.append(running.gate.waiting)
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        _parallel(4, lambda: _call(client, model, outcomes))
        watching.set()
        watcher.join()
    codes = sorted(code for code, _ in outcomes)
    assert codes == ["OK", "OK", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]
    assert all(exact for code, exact in outcomes if code == "OK")
    for code, err in outcomes:
        if code == "RESOURCE_EXHAUSTED":
            assert "server is busy" in err.details() and "retry in about 0.5 s" in err.details()
            assert ("retry-after-ms", "500") in tuple(err.trailing_metadata())
    assert max(depth) == 1 and running.gate.waiting == 0 and running.gate.running == 0
    assert running.metrics.calls[("Infer", "RESOURCE_EXHAUSTED")] == 2


def test_deadlines_stop_running_and_queued_calls(make_server, one_second):
    running = make_server(vetting=False, max_concurrent=1, max_queued=4)
    with InspectorClient(running.address, timeout=60) as client:
        slow = client.load_model(loop_model(one_second * 30).SerializeToString()).id
        started = time.perf_counter()
        outcomes: list = []
        _call(client, slow, outcomes, timeout=0.5)  # a 30 s run, stopped by its deadline
        assert outcomes[0][0] == "DEADLINE_EXCEEDED"
        assert time.perf_counter() - started < 5
        # a call queued behind a running one gives up at its deadline without running
        outcomes = []
        blocker = threading.Thread(target=_call, args=(client, slow, outcomes, 2.0))
        blocker.start()
        while running.gate.running == 0:
            time.sleep(0.01)
        _call(client, slow, outcomes, timeout=0.3)
        blocker.join()
        assert [c for c, _ in outcomes] == ["DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED"]
        time.sleep(0.2)
        assert running.gate.running == 0 and running.gate.waiting == 0
        fast = client.load_model(loop_model(10).SerializeToString()).id
        np.testing.assert_array_equal(client.infer(fast, X)["y"], X)


def test_graceful_shutdown_finishes_in_flight_calls(make_server, one_second):
    running = make_server(vetting=False)
    client = InspectorClient(running.address, timeout=60)
    model = client.load_model(loop_model(one_second).SerializeToString()).id
    outcomes: list = []
    call = threading.Thread(target=_call, args=(client, model, outcomes))
    call.start()
    while running.gate.running == 0:
        time.sleep(0.005)
    stopping = threading.Thread(target=running.stop, args=(10.0,))
    stopping.start()
    time.sleep(0.1)
    late: list = []
    _call(client, model, late)
    call.join()
    stopping.join()
    client.close()
    assert outcomes == [("OK", True)]  # the in-flight call finished with the right answer
    assert late[0][0] == "UNAVAILABLE"  # a new call after stop() began was refused


def test_shutdown_grace_cuts_long_calls(make_server, one_second):
    running = make_server(vetting=False)
    client = InspectorClient(running.address, timeout=60)
    model = client.load_model(loop_model(one_second * 30).SerializeToString()).id
    outcomes: list = []
    call = threading.Thread(target=_call, args=(client, model, outcomes))
    call.start()
    while running.gate.running == 0:
        time.sleep(0.005)
    started = time.perf_counter()
    running.stop(grace=0.3)
    call.join(10)
    client.close()
    assert time.perf_counter() - started < 3
    assert outcomes and outcomes[0][0] in ("CANCELLED", "UNAVAILABLE")


def test_response_and_batch_caps(make_server, small_model_bytes):
    running = make_server(vetting=False, max_response_bytes=20_000, max_batch=2)
    with InspectorClient(running.address, timeout=60) as client:
        model = client.load_model(small_model_bytes).id
        x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
        assert client.infer(model, x)  # logits: far below the cap
        with pytest.raises(grpc.RpcError) as info:
            client.feature_maps(model, x, ["all"])  # every intermediate tensor: above it
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "response limit of 20000 bytes" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            client.infer(model, np.zeros((3, 3, 32, 32), np.float32))
        assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert "limit of 2" in info.value.details()
        assert running.gate.running == 0


def test_session_cache_byte_bound_is_lru(small_model_bytes):
    size = len(small_model_bytes)
    cache = SizedSessionCache(max_bytes=int(2.5 * size), factor=1.0, max_entries=10)
    cpu = ["CPUExecutionProvider"]
    for key in ("a", "b"):
        cache.get(key, lambda: small_model_bytes, cpu)
    cache.get("a", lambda: small_model_bytes, cpu)  # a is now the most recent
    cache.get("c", lambda: small_model_bytes, cpu)  # over the bound: b goes
    assert cache.stats() == {"hits": 1, "misses": 3, "evictions": 1, "entries": 2, "bytes": 2 * size}
    cache.get("a", lambda: small_model_bytes, cpu)
    assert cache.stats()["misses"] == 3
    session = cache.get("b", lambda: small_model_bytes, cpu)
    assert cache.stats()["misses"] == 4
    x = np.random.default_rng(3).random((1, 3, 32, 32), dtype=np.float32)
    import onnxruntime as ort

    want = ort.InferenceSession(small_model_bytes).run(None, {"input": x})[0]
    np.testing.assert_allclose(session.run({"input": x})[session.output_names[0]], want, rtol=1e-6)
    tiny = SizedSessionCache(max_bytes=10, factor=1.0)  # the newest session stays, however large
    tiny.get("a", lambda: small_model_bytes, cpu)
    tiny.get("b", lambda: small_model_bytes, cpu)
    assert tiny.stats()["entries"] == 1 and tiny.stats()["evictions"] == 1
