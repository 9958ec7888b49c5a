"""The shared-memory transport through a real server: the same values as streaming and as
in-process, nothing left in the shm directory, and plain streaming whenever the probe fails."""

import gc
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

import grpc
import numpy as np
import pytest
from factory import CNNBuilder
from inspector_client import InspectorClient, SharedMemoryError
from inspector_client.assemble import assemble
from inspector_client.shared_memory import is_local_target
from inspector_client.v1 import inspector_pb2 as pb
from inspector_client.v1 import inspector_pb2_grpc as pb_grpc

from inspector.config import InspectorConfig
from inspector.core import InputData
from inspector.service.server import start_server
from inspector.service.shared_memory import MIN_BYTES, is_local_peer

RESULT = re.compile(r"inspector-[0-9a-f]{32}")
FREE = re.compile(r"inspector-free-[0-9a-f]{32}")


def _model():
    """Two 128 KiB-per-image Conv outputs (shared memory), a small one and small logits (streamed)."""
    b = CNNBuilder((1, 3, 64, 64), seed=5)
    x = b.relu(b.conv(b.input_name, 8, name="conv1"), name="relu1")
    m = b.conv(x, 8, name="conv2")
    y = b.relu(b.conv(b.maxpool(m, name="pool"), 16, stride=2, name="conv3"), name="relu3")
    return b.build([m, b.gemm(b.flatten(b.gap(y)), 10, name="fc")], output_names=["map", "logits"])


X = np.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def shm_dir():
    d = tempfile.mkdtemp(prefix="inspector-test-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _serve(tmp_path_factory, shm_dir, **config):
    cfg = InspectorConfig(store_dir=tmp_path_factory.mktemp("store"), intra_op_threads=2, vetting=False,
                          shm_dir=Path(shm_dir), **config)
    running = start_server(cfg, port=0)
    with InspectorClient(running.address, shared_memory=False) as c:
        c.load_model(_model().SerializeToString(), name="shm")
    return running


@pytest.fixture(scope="module")
def shm_server(tmp_path_factory, shm_dir):
    running = _serve(tmp_path_factory, shm_dir)
    yield running
    running.stop(grace=1.0)


def _results(directory) -> list[str]:
    return [n for n in os.listdir(directory) if RESULT.fullmatch(n)]


def _probe(directory, token: str | None = None) -> tuple[str, str]:
    token = token or secrets.token_hex(16)
    path = os.path.join(directory, f"inspector-probe-{secrets.token_hex(16)}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, token.encode())
    os.close(fd)
    return path, token


def _raw_call(server, metadata, layers=("Conv",), **request) -> list[pb.ResultChunk]:
    """FeatureMaps (default: every Conv output) through the raw stub, with hand-made metadata."""
    tensor = pb.Tensor(dtype="float32", shape=list(X.shape), data=X.tobytes())
    req = pb.FeatureMapsRequest(model="shm", input=pb.Input(tensor=tensor), layers=list(layers), **request)
    with grpc.insecure_channel(server.address) as channel:
        return list(pb_grpc.InspectorStub(channel).FeatureMaps(req, metadata=metadata, timeout=60))


def _shared(messages) -> list[pb.ItemStart]:
    """The items handed over in shared memory; none of the streamed ones may claim to be."""
    assert not any(m.item.HasField("shm") for m in messages)
    return [start for m in messages for start in m.shared_items]


def test_values_equal_shared_memory_streamed_and_in_process(shm_server, shm_dir):
    core, shm = shm_server.inspector, shm_server.shared_memory
    expected = core.feature_maps("shm", InputData(tensor=X), ["Conv"]).tensors
    outputs = core.infer("shm", InputData(tensor=X)).outputs
    before = shm.bytes_sent
    with InspectorClient(shm_server.address, shm_dir=shm_dir) as fast, \
            InspectorClient(shm_server.address, shared_memory=False) as slow:
        for got in (fast.feature_maps("shm", X, ["Conv"]), slow.feature_maps("shm", X, ["Conv"])):
            assert list(got) == list(expected) == ["conv1_out", "conv2_out", "conv3_out"]
            assert all(np.array_equal(got[k], expected[k]) for k in expected)
        for got in (fast.infer("shm", X), slow.infer("shm", X)):
            assert set(got) == {"map", "logits"}
            assert all(np.array_equal(got[k], outputs[k]) for k in outputs)
    big = [v.nbytes for v in (*expected.values(), *outputs.values()) if v.nbytes >= MIN_BYTES]
    assert len(big) == 3 and shm.bytes_sent - before == sum(big)  # conv3_out and logits streamed
    samples = dict(line.rsplit(" ", 1) for line in shm_server.metrics.render().splitlines()
                   if line and not line.startswith("#"))
    assert float(samples["inspector_shm_bytes_total"]) == shm.bytes_sent
    del got
    gc.collect()  # no array left: every result file handed back for reuse, the probe removed on close
    assert os.listdir(shm_dir) and all(FREE.fullmatch(n) for n in os.listdir(shm_dir))


def test_arrays_are_writable_and_outlive_the_client(shm_server, shm_dir):
    with InspectorClient(shm_server.address, shm_dir=shm_dir) as client:
        maps = client.feature_maps("shm", X, ["conv1"])
    reference = shm_server.inspector.feature_maps("shm", InputData(tensor=X), ["conv1"]).tensors
    conv1 = maps["conv1_out"]
    assert conv1.flags.writeable and np.array_equal(conv1, reference["conv1_out"])
    conv1 += 1  # copy-on-write: the client's own pages
    assert np.array_equal(conv1, reference["conv1_out"] + 1)
    assert len(_results(shm_dir)) == 1  # in use while an array of it lives
    del maps, conv1
    gc.collect()
    assert _results(shm_dir) == [] and any(FREE.fullmatch(n) for n in os.listdir(shm_dir))


def test_a_released_file_carries_a_later_response_and_a_held_one_is_never_reused(shm_server, shm_dir):
    shm = shm_server.shared_memory
    inputs = [X * k for k in (1.0, -2.0, 3.0)]
    expected = [shm_server.inspector.feature_maps("shm", InputData(tensor=x), ["conv1"]).tensors
                for x in inputs]
    with InspectorClient(shm_server.address, shm_dir=shm_dir) as client:
        held = client.feature_maps("shm", inputs[0], ["conv1"])
        dropped = client.feature_maps("shm", inputs[1], ["conv1"])
        assert np.array_equal(dropped["conv1_out"], expected[1]["conv1_out"])
        del dropped
        gc.collect()
        reused = shm.files_reused
        again = client.feature_maps("shm", inputs[2], ["conv1"])
        assert shm.files_reused == reused + 1
        assert np.array_equal(again["conv1_out"], expected[2]["conv1_out"])
        assert np.array_equal(held["conv1_out"], expected[0]["conv1_out"])  # untouched throughout


@pytest.mark.parametrize("case", ["valid", "wrong token", "missing", "symlink", "outside", "fifo",
                                  "no token", "no metadata"])
def test_streams_unless_the_probe_holds(shm_server, shm_dir, tmp_path, case):
    path, token = _probe(shm_dir)
    name = f"inspector-probe-{secrets.token_hex(16)}"
    if case == "wrong token":
        token = secrets.token_hex(16)
    elif case == "missing":
        path = os.path.join(shm_dir, name)
    elif case == "symlink":
        path = os.path.join(shm_dir, name)
        os.symlink(_probe(tmp_path, token)[0], path)
    elif case == "outside":
        path = _probe(tmp_path, token)[0]
    elif case == "fifo":
        path = os.path.join(shm_dir, name)
        os.mkfifo(path, 0o600)
    metadata = {"no token": [("inspector-shm-probe", path)], "no metadata": []}.get(
        case, [("inspector-shm-probe", path), ("inspector-shm-token", token)])
    messages = _raw_call(shm_server, metadata)
    assert len(_shared(messages)) == (2 if case == "valid" else 0)
    got = assemble(messages, shm_dir=shm_dir).group("feature")  # maps the shared file
    expected = shm_server.inspector.feature_maps("shm", InputData(tensor=X), ["Conv"]).tensors
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    del got
    gc.collect()
    assert _results(shm_dir) == []
    for leftover in os.listdir(shm_dir):
        os.unlink(os.path.join(shm_dir, leftover))


def test_server_configured_off_streams(tmp_path_factory, shm_dir):
    running = _serve(tmp_path_factory, shm_dir, shared_memory=False)
    path, token = _probe(shm_dir)
    try:
        assert running.shared_memory is None
        messages = _raw_call(running, [("inspector-shm-probe", path), ("inspector-shm-token", token)])
        assert _shared(messages) == [] and _results(shm_dir) == []
        with InspectorClient(running.address, shm_dir=shm_dir) as client:  # offers it, gets a stream
            assert client.feature_maps("shm", X, ["conv1"])["conv1_out"].shape == (2, 8, 64, 64)
    finally:
        os.unlink(path)
        running.stop(grace=1.0)
    assert os.listdir(shm_dir) == []


def test_janitor_removes_files_no_client_opened(shm_server, shm_dir):
    path, token = _probe(shm_dir)
    messages = _raw_call(shm_server, [("inspector-shm-probe", path), ("inspector-shm-token", token)])
    files = {os.path.basename(i.shm.path) for i in _shared(messages)}
    assert len(files) == 1 and _results(shm_dir) == list(files)  # one file per response
    assert [len(m.shared_items) for m in messages if m.shared_items] == [2]  # in one message
    assert messages[0].HasField("header") and messages[0].shared_items
    offsets = [i.shm.offset for i in _shared(messages)]
    assert offsets[0] == 0 and all(o % 64 == 0 for o in offsets)
    shm_server.shared_memory.sweep()  # younger than the configured age: kept
    assert _results(shm_dir) == list(files)
    not_ours = Path(shm_dir, "inspector-notes")
    not_ours.write_text("not a result file")
    assert shm_server.shared_memory.sweep(max_age_s=0) >= 1  # and the free files of earlier tests
    assert _results(shm_dir) == [] and os.path.exists(path) and not_ours.exists()
    assert not any(FREE.fullmatch(n) for n in os.listdir(shm_dir))
    with pytest.raises(SharedMemoryError, match="shared_memory=False"):
        assemble(messages, shm_dir=shm_dir)  # the file is gone: a clear error
    os.unlink(path)
    not_ours.unlink()


def test_png_blobs_and_small_tensors_stream(shm_server, shm_dir):
    path, token = _probe(shm_dir)
    messages = _raw_call(shm_server, [("inspector-shm-probe", path), ("inspector-shm-token", token)],
                         raw=True, png=True, stats=True)
    os.unlink(path)
    streamed = [m.item for m in messages if m.HasField("item")]
    assert {(i.group, i.name) for i in _shared(messages)} == {("feature", "conv1_out"), ("feature", "conv2_out")}
    assert {i.group for i in streamed} == {"feature", "png", "stats", "channels"}  # conv3_out, PNGs, stats, shown channels
    res = assemble(messages, shm_dir=shm_dir)
    assert all(v.startswith(b"\x89PNG") for v in res.group("png").values())
    del res
    gc.collect()
    assert _results(shm_dir) == []


def test_response_limit_counts_shared_bytes_and_stop_leaves_nothing(tmp_path_factory, shm_dir):
    running = _serve(tmp_path_factory, shm_dir, max_response_bytes=300_000)
    path, token = _probe(shm_dir)
    try:
        with InspectorClient(running.address, shm_dir=shm_dir) as client:
            assert client.feature_maps("shm", X, ["conv1"])["conv1_out"].nbytes == 262_144
            # conv1_out (256 KiB) goes to a file; the streamed 2 x 32 KiB after it cross the limit
            for layers in (["conv1", "conv3", "relu3"], ["Conv"]):
                with pytest.raises(grpc.RpcError) as err:
                    client.feature_maps("shm", X, layers)
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert running.shared_memory.files_written == 2
        messages = _raw_call(running, [("inspector-shm-probe", path), ("inspector-shm-token", token)],
                             layers=["conv1"])
        assert len(_shared(messages)) == 1 and len(_results(shm_dir)) == 1  # nobody opens it
    finally:
        os.unlink(path)
        running.stop(grace=1.0)  # removes the server's files still there
    assert os.listdir(shm_dir) == []


def test_serve_flag_turns_shared_memory_off():
    from inspector.cli.main import build_parser
    from inspector.cli.serve import config_from_args

    assert config_from_args(build_parser().parse_args(["serve"])).shared_memory is True
    assert config_from_args(build_parser().parse_args(["serve", "--no-shared-memory"])).shared_memory is False


def test_a_client_that_cannot_probe_just_streams(shm_server, shm_dir, tmp_path):
    missing = tmp_path / "no-such-dir"
    with InspectorClient(shm_server.address, shared_memory=True, shm_dir=missing) as client:
        assert client.feature_maps("shm", X, ["conv1"])["conv1_out"].shape == (2, 8, 64, 64)
    with InspectorClient(shm_server.address, shared_memory=True, shm_dir=tmp_path) as client:
        assert client.infer("shm", X)["map"].shape == (2, 8, 64, 64)  # a probe the server cannot see
    assert os.listdir(tmp_path) == [] and _results(shm_dir) == []


@pytest.mark.parametrize("peer, local", [
    ("ipv4:127.0.0.1:5000", True), ("ipv6:%5B::1%5D:5000", True), ("ipv6:[::1]:5000", True),
    ("unix:", True), ("unix:/tmp/sock", True), ("ipv4:10.0.0.2:5000", False),
    ("ipv6:%5B::12%5D:5000", False), ("ipv4:128.0.0.1:5000", False)])
def test_local_peers(peer, local):
    assert is_local_peer(peer) is local


@pytest.mark.parametrize("target, local", [
    ("127.0.0.1:50051", True), ("localhost:50051", True), ("[::1]:50051", True), ("unix:/tmp/s", True),
    ("dns:///localhost:50051", True), ("ipv4:127.0.0.2:1", True), ("10.1.2.3:50051", False),
    ("example.org:443", False), ("[2001:db8::1]:50051", False)])
def test_local_targets(target, local):
    assert is_local_target(target) is local
