"""The store across crashes: digests verified on start, corrupt entries quarantined, kill -9."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from inspector_client import InspectorClient

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kill9_uploads.py"


def test_corrupt_entries_are_quarantined_on_start(make_server, small_model_bytes, tmp_path):
    from factory import small_cnn

    store = tmp_path / "store"
    first = make_server(store_dir=store, vetting=False)
    other_bytes = small_cnn(seed=5).SerializeToString()
    with InspectorClient(first.address, timeout=60) as client:
        good = client.load_model(small_model_bytes).id
        flipped = client.load_model(other_bytes).id
    first.stop(grace=0.5)
    data = bytearray((store / flipped / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight: still a loadable model, wrong bytes
    (store / flipped / "model.onnx").write_bytes(bytes(data))
    headless = store / hashlib.sha256(b"never completed").hexdigest()
    headless.mkdir()
    (headless / "meta.json").write_text(json.dumps({"size_bytes": 1, "created": 0}))

    second = make_server(store_dir=store, vetting=False, metrics_port=0)
    assert sorted(second.quarantined_now) == sorted([
        (flipped, "the bytes of model.onnx do not match its id (sha256)"),
        (headless.name, "model.onnx is missing")])
    assert sorted(n.rsplit("-", 1)[0] for n in second.quarantined()) == sorted([flipped, headless.name])
    assert (store / ".quarantine").is_dir() and not (store / flipped).exists()
    assert "inspector_store_quarantined 2.0" in second.metrics.render()
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    with InspectorClient(second.address, timeout=60) as client:
        assert [m.id for m in client.list_models()] == [good]
        reported = client.quarantined_models()  # what ListModels tells any client
        assert sorted(n.rsplit("-", 1)[0] for n in reported) == sorted([flipped, headless.name])
        want = ort.InferenceSession(small_model_bytes).run(None, {"input": x})[0]
        np.testing.assert_allclose(next(iter(client.infer(good, x).values())), want, rtol=1e-5)
    third = make_server(store_dir=store, vetting=False)  # nothing new to quarantine
    assert third.quarantined_now == [] and len(third.quarantined()) == 2


def test_kill9_during_uploads_leaves_a_consistent_store(tmp_path):
    spec = importlib.util.spec_from_file_location("kill9_uploads", SCRIPT)
    kill9 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kill9)
    report = kill9.run(rounds=2, store=tmp_path / "store", seed=3)
    assert report["problems"] == []
    assert report["completed_uploads"] >= 1
    # the checker is not blind: a half-written folder and a missing upload are both reported
    (tmp_path / "store" / ("f" * 64)).mkdir()
    problems = kill9.check_store(tmp_path / "store", {"e" * 64: "e" * 64})
    assert any("is missing" in p for p in problems)
    assert any("quarantined" in p for p in problems)
