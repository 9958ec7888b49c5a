"""Replicas as real `inspector serve` processes over one bucket of the real S3 server (the
session's SeaweedFS, conftest.py), each with its own cache, behind one client given "A,B".

A replica is killed (SIGKILL) or stopped (SIGTERM) while a call is in flight on it; the moment is
made certain by freezing processes (SIGSTOP) rather than by timing: a streamed call's serving
replica is found by freezing every replica at its first progress event and asking each one's
metrics in turn; an upload's by the partial file in its cache while the client holds back the
rest of the upload; a unary Infer's by sending two calls at once to a pair with one replica frozen.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from factory import small_cnn
from grpc_health.v1 import health_pb2, health_pb2_grpc
from inspector_client import InspectorClient
from inspector_client import client as client_module
from s3_server import BUCKET

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "inspector.v1.Inspector"
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
STEPS = 300  # a Maximize of small_cnn takes ~1.5 ms a step here: long enough to be caught mid-stream
DRAIN_STEPS = 800  # ... and to be still running once a SIGTERMed replica reports that it is draining


class Replica:
    """One `inspector serve --store s3://...` process."""

    def __init__(self, proc: subprocess.Popen, folder: Path) -> None:
        self.proc, self.folder = proc, folder
        self.cache = folder / "cache"
        self.port = self.metrics_url = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.folder / "err.log").read_text()[-3000:]

    def started(self, deadline: float) -> None:
        """Wait for the two lines `inspector serve` prints once it listens."""
        out = self.folder / "out.log"
        while True:
            lines = out.read_text().splitlines()
            if len(lines) >= 2:
                self.port = int(lines[0].rsplit(":", 1)[1])
                self.metrics_url = lines[1].split()[-1]
                return
            assert self.proc.poll() is None, f"inspector serve exited: {self.log()}"
            assert time.monotonic() < deadline, f"inspector serve did not start: {self.log()}"
            time.sleep(0.02)

    def health(self) -> int | grpc.StatusCode:
        """The health status of the Inspector service, or the call's error code."""
        with grpc.insecure_channel(self.address) as channel:
            try:
                return health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=SERVICE), timeout=5).status
            except grpc.RpcError as err:
                return err.code()

    def metrics(self) -> dict[str, float]:
        """Prometheus samples: 'name{labels}' -> value."""
        text = urllib.request.urlopen(self.metrics_url, timeout=10).read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    def calls(self, rpc: str, code: str = "OK") -> int:
        return int(self.metrics().get(f'inspector_rpc_total{{code="{code}",rpc="{rpc}"}}', 0))

    def running(self) -> int:
        return int(self.metrics()["inspector_calls_running"])

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone (its sockets closed)."""
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture()
def replicas(s3, tmp_path):
    """start(n): n replicas over one fresh prefix of the bucket, started at once, each SERVING."""
    started: list[Replica] = []
    prefix = f"procs-{uuid.uuid4().hex[:8]}"
    env = {**s3.env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")])}

    def start(n: int = 2) -> list[Replica]:
        new = []
        for _ in range(n):
            folder = tmp_path / f"replica{len(started)}"
            folder.mkdir()
            with (folder / "out.log").open("w") as out, (folder / "err.log").open("w") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "inspector.cli.main", "serve", "--port", "0", "--metrics-port", "0",
                     "--store", f"s3://{BUCKET}/{prefix}", "--s3-endpoint-url", s3.endpoint,
                     "--store-cache", str(folder / "cache"), "--model-root", str(tmp_path / "models"),
                     "--no-vetting", "--threads", "1"],
                    stdout=out, stderr=err, env=env, cwd=folder)
            replica = Replica(proc, folder)
            started.append(replica)
            new.append(replica)
        deadline = time.monotonic() + 60
        for replica in new:
            replica.started(deadline)
        for replica in new:  # NOT_SERVING until its store (the bucket) has answered
            while (status := replica.health()) != SERVING:
                assert time.monotonic() < deadline, f"still {status}: {replica.log()}"
                time.sleep(0.05)
        return new

    start.prefix = prefix
    try:
        yield start
    finally:
        for replica in started:
            if replica.proc.poll() is None:
                replica.proc.kill()  # works on a stopped (SIGSTOP) process too
            replica.proc.wait(10)


def frozen_server(replicas: list[Replica]) -> Replica:
    """The replica running the one call in flight, frozen (SIGSTOP) mid-call; the others run.

    Every replica is frozen at once, then each thawed in turn to ask its metrics; the one with a
    call running is frozen again, so it cannot finish the call however long the asking takes."""
    for r in replicas:
        r.signal(signal.SIGSTOP)
    found = []
    for r in replicas:
        r.signal(signal.SIGCONT)
        if r.running():
            r.signal(signal.SIGSTOP)
            found.append(r)
    assert len(found) == 1, f"{len(found)} replicas are running a call"
    return found[0]


def model_bytes(seed: int, classes: int = 10) -> bytes:
    return small_cnn(seed=seed, classes=classes).SerializeToString()


def plain_logits(data: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)


def test_replicas_share_uploads_and_an_infer_in_flight_on_a_dying_one_is_answered(replicas):
    a, b = replicas(2)
    data = model_bytes(81)
    with InspectorClient(a.address, timeout=60) as only_a:
        info = only_a.load_model(data, name="m")
    assert info.id == hashlib.sha256(data).hexdigest()
    with InspectorClient(b.address, timeout=60) as only_b:  # B never saw the upload: the bucket has it
        assert [(m.id, m.names) for m in only_b.list_models()] == [(info.id, ("m",))]
        np.testing.assert_allclose(only_b.infer("m", X)["logits"], plain_logits(data, X), rtol=1e-5, atol=1e-6)
    assert (a.calls("UploadModel"), b.calls("UploadModel"), b.calls("Infer")) == (1, 0, 1)

    want = plain_logits(data, X)
    with InspectorClient(f"{a.address},{b.address}", timeout=60) as both:
        answers = killed_with_a_call_in_flight(a, b, "Infer", lambda: both.infer("m", X))
    for answer in answers:
        np.testing.assert_allclose(answer["logits"], want, rtol=1e-5, atol=1e-6)


def test_a_server_path_load_in_flight_on_a_dying_replica_is_sent_again(replicas, tmp_path):
    a, b = replicas(2)
    path = tmp_path / "models" / "cnn.onnx"  # both replicas run here: one path serves both
    path.parent.mkdir()
    path.write_bytes(model_bytes(85))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with InspectorClient(f"{a.address},{b.address}", timeout=60) as both:
        # LoadModel is not in the channel's retry policy: the client sends it again itself
        infos = killed_with_a_call_in_flight(a, b, "LoadModel", lambda: both.load_model(
            server_path=str(path), name="cnn", preprocess={"resize": 32}))
        assert [(i.id, i.names, i.preprocess) for i in infos] == [(digest, ("cnn",), {"resize": 32})] * 2
        assert [(m.id, m.names) for m in both.list_models()] == [(digest, ("cnn",))]  # stored once


def killed_with_a_call_in_flight(victim: Replica, other: Replica, rpc: str, call) -> list:
    """Results of two calls made at once through a client of both replicas while `victim` is
    frozen: round_robin sends one to each; `other` answers its one; the other one, in flight on
    `victim`, is answered by `other` too once `victim` is killed."""
    for _ in range(20):  # until round_robin has both replicas connected (each answered a call)
        call()
        if victim.calls(rpc) and other.calls(rpc):
            break
    before = (victim.calls(rpc), other.calls(rpc))
    assert min(before) > 0, "round_robin never used both replicas"
    victim.signal(signal.SIGSTOP)
    with ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(call) for _ in range(2)]
        done, pending = wait(calls, timeout=30, return_when=FIRST_COMPLETED)
        assert len(done) == 1 and other.calls(rpc) == before[1] + 1  # `other` answered its one...
        victim.kill()  # ...while the other call waits on the frozen victim, which dies
        results = [c.result(timeout=30) for c in calls]
    assert other.calls(rpc) == before[1] + 2  # answered by `other`: the victim never ran it
    return results


def test_a_streamed_call_whose_replica_is_killed_mid_stream_is_answered_by_the_other(replicas):
    a, b = replicas(2)
    with InspectorClient(a.address, timeout=60) as only_a:
        only_a.load_model(model_bytes(82), name="m")
    steps, killed = [], []

    def on_progress(event) -> None:
        steps.append(event.step)
        if not killed:  # the first event: the call is on one replica, computing
            victim = frozen_server([a, b])
            victim.kill()
            killed.append(victim)

    with InspectorClient(f"{a.address},{b.address}", timeout=60) as both:
        result = both.maximize("m", "relu2_out", [0, 3], steps=STEPS, on_progress=on_progress)
    survivor = b if killed[0] is a else a
    first = len(steps) - STEPS  # the killed replica's events, then the survivor's from step 1
    assert 0 < first < STEPS and steps == list(range(1, first + 1)) + list(range(1, STEPS + 1))
    with InspectorClient(survivor.address, timeout=60) as alone:
        again = alone.maximize("m", "relu2_out", [0, 3], steps=STEPS)
    assert result.objective.shape == (STEPS, 2) and result.inputs.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(result.inputs, again.inputs)  # the same seed: the same images
    np.testing.assert_array_equal(result.objective, again.objective)
    assert survivor.calls("Maximize") == 2


def _bucket(s3, prefix: str) -> dict[str, bytes]:
    listed = s3.client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])
    return {o["Key"][len(prefix) + 1:]: s3.client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            for o in listed}


@pytest.mark.parametrize("given", ["bytes", "file"])
def test_an_upload_whose_replica_is_killed_restarts_on_the_other(replicas, s3, monkeypatch, tmp_path, given):
    a, b = replicas(2)
    data = model_bytes(83, classes=1000)  # 85 kB: six chunks
    (tmp_path / "big.onnx").write_bytes(data)
    upload = data if given == "bytes" else tmp_path / "big.onnx"  # a file is read again from its start
    chunk = 16 << 10
    monkeypatch.setattr(client_module, "UPLOAD_CHUNK", chunk)
    sent, killed = [], []

    def on_progress(event) -> None:
        sent.append(event.step)
        if killed:
            return
        # the client holds back the rest of the upload until the replica is killed
        deadline = time.monotonic() + 30
        while True:
            partial = {r: [p for p in (r.cache / ".tmp").glob("*/model.onnx") if p.stat().st_size]
                       for r in (a, b)}
            if any(partial.values()):
                break
            assert time.monotonic() < deadline, "no replica started writing the upload"
            time.sleep(0.01)
        (victim,) = [r for r, files in partial.items() if files]
        assert [p.stat().st_size for p in partial[victim]] == [chunk]  # the first chunk only
        killed.append(victim)  # first: this runs in gRPC's sending thread, and the next attempt's
        victim.kill()  # sending thread may call on_progress before kill() returns here

    with InspectorClient(f"{a.address},{b.address}", timeout=60) as both:
        info = both.load_model(upload, name="big", on_progress=on_progress)
        survivor = b if killed[0] is a else a
        digest = hashlib.sha256(data).hexdigest()
        assert info.id == digest and info.size_bytes == len(data) and info.names == ("big",)
        assert sent[0] == chunk and sent[-1] == len(data) and sent.count(chunk) == 2  # started over
        assert (survivor.calls("UploadModel"), survivor.calls("UploadModel", "UNAVAILABLE")) == (1, 0)
        np.testing.assert_allclose(both.infer("big", X)["logits"], plain_logits(data, X), rtol=1e-5, atol=1e-6)

    bucket = _bucket(s3, replicas.prefix)
    manifests = {k.removeprefix("manifests/").removesuffix(".json"): json.loads(v)
                 for k, v in bucket.items() if k.startswith("manifests/")}
    assert list(manifests) == [digest]  # stored once
    for model_id, manifest in manifests.items():  # each manifest's files are whole
        for rel, file in manifest["files"].items():
            blob = bucket[f"blobs/{model_id}/{rel}"]
            assert hashlib.sha256(blob).hexdigest() == file["sha256"] and len(blob) == file["size"]
    assert bucket[f"blobs/{digest}/model.onnx"] == data
    blobs = {k.split("/")[1] for k in bucket if k.startswith("blobs/")}
    assert blobs == set(manifests)  # no blob without its manifest
    names = [json.loads(v) for k, v in bucket.items() if k.startswith("names/")]
    assert [(n["name"], n["id"]) for n in names] == [("big", digest)]
    assert {k.split("/")[0] for k in bucket} <= {"blobs", "manifests", "names", "meta"}


def test_sigterm_drains_the_call_in_flight_and_the_other_replica_takes_the_next(replicas):
    a, b = replicas(2)
    with InspectorClient(a.address, timeout=60) as only_a:
        only_a.load_model(model_bytes(84), name="m")
    steps, stopped, health = [], [], []

    def on_progress(event) -> None:
        steps.append(event.step)
        if stopped:
            return
        victim = frozen_server([a, b])
        victim.signal(signal.SIGTERM)
        victim.signal(signal.SIGCONT)
        stopped.append(victim)
        deadline = time.monotonic() + 10  # the call is still running: the drain has begun
        while (status := victim.health()) == SERVING:
            assert time.monotonic() < deadline, "a draining replica still reports SERVING"
            time.sleep(0.02)
        health.append((status, victim.running()))  # the call still running while the replica drains

    with InspectorClient(f"{a.address},{b.address}", timeout=60) as both:
        result = both.maximize("m", "relu2_out", [0, 3], steps=DRAIN_STEPS, on_progress=on_progress)
        (victim,) = stopped
        other = b if victim is a else a
        assert steps == list(range(1, DRAIN_STEPS + 1))  # one attempt: the draining replica finished it
        assert health[0] in ((NOT_SERVING, 1), (grpc.StatusCode.UNAVAILABLE, 1))  # not serving, or refusing
        assert victim.proc.wait(30) == 0  # exits cleanly once drained
        before = other.calls("Infer")
        for _ in range(6):
            both.infer("m", X)
        assert other.calls("Infer") == before + 6
    with InspectorClient(other.address, timeout=60) as alone:
        again = alone.maximize("m", "relu2_out", [0, 3], steps=DRAIN_STEPS)
    np.testing.assert_array_equal(result.inputs, again.inputs)
    np.testing.assert_array_equal(result.objective, again.objective)
