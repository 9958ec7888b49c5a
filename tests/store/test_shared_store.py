"""A store folder shared by several processes at once (open_store("shared:/path")): real
processes racing on the same model and the same names, uploads in flight across a restart,
and the per-process temporary area."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from factory import small_cnn
from onnx import numpy_helper
from replica_worker import check_race, results, start_replicas

from inspector import errors
from inspector.store import local_root, open_store, tmp_area
from inspector.store.model_store import ModelStore
from inspector.store.replicated import ReplicatedStore
from inspector.store.vetting import verify_store


def _bytes(seed: int = 0) -> bytes:
    return small_cnn(seed=seed).SerializeToString()


def test_round_trip_names_and_metadata(tmp_path):
    root = tmp_path / "shared"
    store = open_store(f"shared:{root}")
    assert isinstance(store, ReplicatedStore) and store.root == root and store.ready()
    a = store.put_bytes([_bytes(0)], name="a", metadata={"preprocess": {"resize": 224}})
    assert a.id == hashlib.sha256(_bytes(0)).hexdigest() and a.path == root / a.id / "model.onnx"
    b = store.put_bytes([_bytes(0)], name="b", metadata={"preprocess": {"resize": 96}})
    assert b.id == a.id and b.names == ("a", "b")
    assert store.get("a").metadata == {"preprocess": {"resize": 224}}
    with pytest.raises(errors.FailedPrecondition, match="belongs to model"):
        store.put_bytes([_bytes(2)], name="b")
    c = store.put_bytes([_bytes(2)], name="b", replace=True)
    assert store.get("b").id == c.id and store.get(a.id).names == ("a",)
    assert store.update_metadata(c.id, {"k": [1, 2]}).metadata == {"k": [1, 2]}
    assert store.get(a.id[:10]).id == a.id
    other = open_store(root)  # the plain path of a shared folder opens it shared too
    assert isinstance(other, ReplicatedStore)
    assert [(e.id, e.names) for e in other.list()] == [(a.id, ("a",)), (c.id, ("b",))]
    assert other.get("b").metadata == {"k": [1, 2]}
    assert other.delete("a").id == a.id  # its last name: the model goes
    assert [e.id for e in store.list()] == [c.id]  # seen by the first instance at once
    with pytest.raises(errors.NotFound):
        store.get("a")
    with pytest.raises(errors.NotFound):
        store.get(a.id)
    with pytest.raises(ValueError, match="shared model store"):
        ModelStore(root)  # the single-process store would not honour the other replicas
    assert verify_store(local_root(f"shared:{root}")) == []  # its entries are checkable as before
    assert list((root / ".tmp").iterdir()) == []


def test_put_path_with_external_data_and_bad_input(tmp_path):
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    model = small_cnn()
    onnx.save_model(small_cnn(), src / "net.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="data/w.bin", size_threshold=0)
    store = open_store(f"shared:{tmp_path / 's'}")
    entry = store.put_path(src / "net.onnx", name="ext")
    assert (entry.path.parent / "data" / "w.bin").is_file()
    for x, y in zip(onnx.load(entry.path).graph.initializer, model.graph.initializer, strict=True):
        np.testing.assert_array_equal(numpy_helper.to_array(x), numpy_helper.to_array(y))
    with pytest.raises(errors.InvalidArgument, match="external data"):
        store.put_bytes([(src / "net.onnx").read_bytes()])
    with pytest.raises(errors.InvalidArgument):
        store.put_bytes([b"not a model"])
    with pytest.raises(errors.ResourceExhausted):
        store.put_bytes([_bytes(0)], max_bytes=10)
    with pytest.raises(errors.InvalidArgument, match="must be JSON"):
        store.put_bytes([_bytes(0)], name="j", metadata={"x": object()})
    assert [e.id for e in store.list()] == [entry.id]
    assert list((tmp_path / "s" / ".tmp").iterdir()) == []


def test_a_local_store_is_not_taken_over(tmp_path):
    ModelStore(tmp_path).put_bytes([_bytes(0)], name="x")
    assert isinstance(open_store(tmp_path), ModelStore)
    with pytest.raises(ValueError, match="local model store"):
        open_store(f"shared:{tmp_path}")


def test_processes_racing_on_one_model_and_one_name(tmp_path):
    root = tmp_path / "shared"
    open_store(f"shared:{root}")
    go = tmp_path / "go"
    n = 4
    procs = start_replicas([{"scenario": "race", "spec": f"shared:{root}", "index": i, "go": str(go),
                             "rounds": 8} for i in range(n)])
    time.sleep(1.0)  # let every replica import and open the store
    go.touch()
    outcomes = results(procs)
    ids = {s: hashlib.sha256(_bytes(s)).hexdigest() for s in range(3)}
    check_race(open_store(f"shared:{root}"), outcomes, ids)
    assert list((root / ".tmp").iterdir()) == []


def test_a_start_never_deletes_an_upload_in_flight(tmp_path):
    root = tmp_path / "shared"
    open_store(f"shared:{root}")
    resume = tmp_path / "resume"
    uploader, = start_replicas([{"scenario": "slow", "spec": f"shared:{root}", "resume": str(resume)}])
    assert json.loads(uploader.stdout.readline()) == {"started": True}
    in_flight = list((root / ".tmp").iterdir())
    assert len(in_flight) == 1 and (in_flight[0] / "model.onnx").is_file()
    # leftovers a start may remove: a dead process of this host, another host's stale work
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (root / ".tmp" / f"{tmp_area.host()}-{dead}-{'d' * 32}").mkdir()
    stale = root / ".tmp" / f"elsewhere-12-{'e' * 32}"
    stale.mkdir()
    os.utime(stale, (time.time() - 2 * tmp_area.STALE_S,) * 2)
    fresh = root / ".tmp" / f"elsewhere-13-{'f' * 32}"  # another host's, recent: in flight there
    fresh.mkdir()
    restarted = open_store(f"shared:{root}")  # another replica starting now
    assert sorted(p.name for p in (root / ".tmp").iterdir()) == sorted([in_flight[0].name, fresh.name])
    resume.touch()
    done, = results([uploader])
    assert restarted.get("slow").id == done["id"] == hashlib.sha256(_bytes(7)).hexdigest()


def test_sweep_rules(tmp_path):
    mine = tmp_path / tmp_area.new_name()
    mine.mkdir()
    assert tmp_area.owned(mine.name)
    old_unknown = tmp_path / "abc"
    old_unknown.mkdir()
    os.utime(old_unknown, (time.time() - 10,) * 2)
    assert tmp_area.sweep(tmp_path, stale_s=60) == [] and mine.is_dir()
    assert tmp_area.sweep(tmp_path, stale_s=60, unknown_stale_s=5) == ["abc"] and mine.is_dir()
    # a pid reused by a process that started after the entry was written: abandoned
    reused = tmp_path / f"{tmp_area.host()}-1-{'a' * 32}"
    reused.mkdir()
    os.utime(reused, (0, 0))
    assert tmp_area.sweep(tmp_path) == [reused.name]


def test_the_core_over_two_replicas_of_one_folder(tmp_path):
    """Inspector cores whose OpenModels use the shared folder (as models.py will through open_store)."""
    from inspector import InputData, Inspector, InspectorConfig

    a, b = (Inspector(InspectorConfig(store_dir=tmp_path / f"unused-{r}", vetting=False)) for r in "ab")
    for core in (a, b):
        core.models.store = open_store(f"shared:{tmp_path / 'shared'}")
    info = a.upload([_bytes(71)], name="m")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(b.infer("m", InputData(tensor=x)).outputs["logits"],
                               a.infer(info.id, InputData(tensor=x)).outputs["logits"], rtol=1e-6)
    assert "differentiability" in b.store.get("m").metadata
    assert b.unload("m") == info.id and a.list_models() == []


def test_readiness_watch_and_config(tmp_path):
    import threading

    from inspector import InspectorConfig
    from inspector.store import default_cache_dir, store_from_config, watch_ready

    class Flaky:
        def __init__(self):
            self.answers = [False, False, True, True, False]

        def ready(self):
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    seen, done = [], threading.Event()

    def on_change(ok: bool) -> None:
        seen.append(ok)
        if len(seen) == 3:
            done.set()

    stop = watch_ready(Flaky(), on_change, interval_s=0.01)
    assert done.wait(5) and seen == [False, True, False]  # told on each change only
    stop.set()
    config = InspectorConfig(store_dir=Path(f"shared:{tmp_path / 's'}"))
    assert isinstance(store_from_config(config), ReplicatedStore)
    assert isinstance(store_from_config(InspectorConfig(store_dir=tmp_path / "l")), ModelStore)
    assert local_root("s3://b/p") is None and verify_store(None) == []
    assert default_cache_dir("s3://b/p") == default_cache_dir(str(Path("s3://b/p/")))  # --store as a Path


def test_a_writer_killed_while_holding_the_lock_blocks_nobody(tmp_path):
    import signal
    import textwrap

    root = tmp_path / "shared"
    store = open_store(f"shared:{root}")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(Path(__file__).resolve().parents[2])!r}]
        from inspector.store import open_store
        with open_store("shared:{root}").backend._locked():
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        holder.wait(10)
    started = time.monotonic()
    assert store.put_bytes([_bytes(0)], name="after").name == "after"
    assert time.monotonic() - started < 5
