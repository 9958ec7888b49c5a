"""SessionCache and Session on real onnxruntime sessions: caching, errors, cancellation."""

import contextvars
import threading
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from factory import CNNBuilder, small_cnn
from onnx import TensorProto, helper

from inspector import errors
from inspector.runtime.ort_errors import clean
from inspector.runtime.sessions import SessionCache

CPU = ["CPUExecutionProvider"]
X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)


class Builds:
    """A build callback that counts its calls."""

    def __init__(self, model, delay: float = 0.0) -> None:
        self.model, self.delay, self.calls = model, delay, 0
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.model


def _plain(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=CPU).run(None, feeds)


def test_hits_misses_and_values():
    cache = SessionCache(intra_op_threads=1)
    build = Builds(small_cnn())
    s1 = cache.get(("m", "fwd"), build, CPU)
    s2 = cache.get(("m", "fwd"), build, CPU)
    assert s1 is s2 and build.calls == 1
    assert cache.stats() == {"hits": 1, "misses": 1, "evictions": 0, "entries": 1}
    assert s1.providers == ("CPUExecutionProvider",)
    assert s1.input_names == ("input",) and s1.output_names == ("logits",)
    np.testing.assert_allclose(s1.run({"input": X})["logits"], _plain(small_cnn(), {"input": X})[0],
                               rtol=1e-5, atol=1e-5)


def test_lru_and_evict_prefix():
    cache = SessionCache(max_entries=2)
    builds = {k: Builds(small_cnn(seed=i)) for i, k in enumerate(["a", "b", "c"])}
    cache.get(("a", 1), builds["a"], CPU)
    cache.get(("b", 1), builds["b"], CPU)
    cache.get(("a", 1), builds["a"], CPU)  # a is now the most recent
    cache.get(("c", 1), builds["c"], CPU)  # evicts b
    assert cache.stats()["evictions"] == 1
    cache.get(("a", 1), builds["a"], CPU)
    assert builds["a"].calls == 1
    cache.get(("b", 1), builds["b"], CPU)
    assert builds["b"].calls == 2
    cache = SessionCache()
    for key in [("m1", "fwd"), ("m1", "bwd"), ("m2", "fwd"), "m1"]:
        cache.get(key, Builds(small_cnn()), CPU)
    cache.evict("m1")
    assert cache.stats()["entries"] == 1
    again = Builds(small_cnn())
    cache.get(("m2", "fwd"), again, CPU)
    cache.get(("m1", "fwd"), again, CPU)
    assert again.calls == 1  # m2 survived, m1 was rebuilt


def test_concurrent_get_builds_once():
    cache = SessionCache()
    build = Builds(small_cnn(), delay=0.2)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", build, CPU)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert build.calls == 1 and len(got) == 6 and all(s is got[0] for s in got)
    assert cache.stats()["misses"] == 1 and cache.stats()["hits"] == 5


def test_path_with_external_data(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(small_cnn(), path, save_as_external_data=True, location="w.bin",
                    size_threshold=0)
    session = SessionCache().get("ext", lambda: path, CPU)
    np.testing.assert_allclose(session.run({"input": X})["logits"],
                               _plain(small_cnn(), {"input": X})[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("feeds, words", [
    ({"input": X.astype(np.float64)}, ["'input'", "float32", "float64"]),
    ({"input": X[0]}, ["'input'", "4 dimensions", "[N, 3, 32, 32]", "[3, 32, 32]"]),
    ({"input": X[:, :, :16]}, ["'input'", "size 32 in dimension 2", "[2, 3, 16, 32]"]),
    ({}, ["missing input 'input'"]),
    ({"input": X, "zzz": X}, ["unknown input 'zzz'"]),
])
def test_feed_errors(feeds, words):
    session = SessionCache().get("m", lambda: small_cnn(), CPU)
    with pytest.raises(errors.InvalidArgument) as info:
        session.run(feeds)
    for word in words:
        assert word in info.value.message
    with pytest.raises(errors.InvalidArgument, match="no output 'nope'"):
        session.run({"input": X}, outputs=["nope"])


def test_kernel_failure_named_without_paths():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "k"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [2, 6])
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="to_2x6")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [shape]),
                              opset_imports=[helper.make_opsetid("", 17)])
    session = SessionCache().get("r", lambda: model, CPU)
    assert session.run({"x": np.ones((3, 4), np.float32)})["y"].shape == (2, 6)
    with pytest.raises(errors.InvalidArgument) as info:
        session.run({"x": np.ones((5, 5), np.float32)})
    msg = info.value.message
    assert "'to_2x6' (Reshape)" in msg and "/" not in msg and ".h:" not in msg


def test_load_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(errors.InvalidArgument) as info:
        SessionCache().get("bad", lambda: bad, CPU)
    assert str(tmp_path) not in info.value.message and "cannot load" in info.value.message
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    node = helper.make_node("FooBar", ["x"], ["y"], domain="com.example")
    custom = helper.make_model(helper.make_graph([node], "g", [x], [x]), opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(errors.FailedPrecondition, match="operator"):
        SessionCache().get("custom", lambda: custom, CPU)


def test_clean_strips_paths_and_sources():
    raw = ("Non-zero status code returned while running Reshape node. Name:'r' Status Message: "
           "/onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:84 "
           "onnxruntime::ReshapeHelper input in /home/user/models/net.onnx failed")
    out = clean(raw)
    assert "reshape_helper" not in out and "/home/user" not in out and "Reshape node" in out


def _long_run():
    """A session and an input that take about a second: 24 convs on 12 x 32 x 96 x 96."""
    b = CNNBuilder((1, 32, 96, 96))
    x = b.input_name
    for _ in range(24):
        x = b.relu(b.conv(x, 32))
    session = SessionCache(intra_op_threads=2).get("long", lambda: b.build(x), CPU)
    return session, np.random.default_rng(1).standard_normal((12, 32, 96, 96)).astype(np.float32)


def test_cancellation_stops_a_long_run():
    session, inp = _long_run()
    start = time.perf_counter()
    assert session.run({"input": inp}, cancelled=lambda: False)  # a full, uncancelled run
    full = time.perf_counter() - start
    start = time.perf_counter()
    with pytest.raises(errors.Cancelled):
        session.run({"input": inp}, cancelled=lambda: time.perf_counter() - start > 0.02)
    stopped = time.perf_counter() - start
    assert stopped < 0.5 * full, (stopped, full)
    with pytest.raises(errors.Cancelled):
        session.run({"input": inp}, cancelled=lambda: True)


def test_real_detector_by_path(real_model_path):
    path = real_model_path("320n.onnx")
    session = SessionCache().get(("yolo", "plain"), lambda: path, CPU)
    x = np.random.default_rng(2).random((1, 3, 320, 320), dtype=np.float32)
    np.testing.assert_allclose(session.run({"images": x})["output0"],
                               _plain(onnx.load(path), {"images": x})[0], rtol=1e-4, atol=1e-3)
    with pytest.raises(errors.InvalidArgument, match=r"node '/model.11/Concat' \(Concat\)"):
        session.run({"images": x[:, :, :100, :100]})


def test_cancellation_read_from_the_callers_context():
    """A check that reads a context variable (as the service's per-call check does) still works
    although the watcher runs in another thread."""
    flag: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
    session, inp = _long_run()
    flag.set(time.perf_counter() + 0.02)
    start = time.perf_counter()
    with pytest.raises(errors.Cancelled):
        session.run({"input": inp}, cancelled=lambda: (d := flag.get()) is not None
                    and time.perf_counter() > d)
    assert time.perf_counter() - start < 1.0
