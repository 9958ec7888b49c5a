"""ModelStore on a real temp folder: round trips, restart, names, limits, crashes, external data."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from factory import small_cnn
from onnx import numpy_helper

from inspector import errors
from inspector.store.model_store import ModelStore

REPO = Path(__file__).resolve().parents[2]


def _bytes(seed: int = 0) -> bytes:
    return small_cnn(seed=seed).SerializeToString()


def _chunks(data: bytes, size: int = 1000):
    return (data[i:i + size] for i in range(0, len(data), size))


def test_round_trip_and_restart(tmp_path):
    data = _bytes()
    store = ModelStore(tmp_path)
    entry = store.put_bytes(_chunks(data), name="cnn", metadata={"preprocess": {"size": 32}})
    assert entry.id == hashlib.sha256(data).hexdigest()
    assert entry.path == tmp_path / entry.id / "model.onnx" and entry.path.read_bytes() == data
    assert entry.size_bytes == len(data) and entry.name == "cnn"
    assert store.get(entry.id) == store.get("cnn") == store.get(entry.id[:8]) == entry
    assert store.list() == [entry]
    other = store.put_bytes([_bytes(1)])
    assert [e.id for e in store.list()] == [entry.id, other.id]
    assert ModelStore(tmp_path).list() == store.list()  # a restart sees the same entries
    assert store.delete("cnn") == entry
    assert not (tmp_path / entry.id).exists() and store.list() == [other]
    with pytest.raises(errors.NotFound, match="'cnn'"):
        store.get("cnn")
    assert ModelStore(tmp_path).list() == [other]


def test_same_bytes_twice_and_names_are_aliases(tmp_path):
    store = ModelStore(tmp_path)
    a = store.put_bytes([_bytes(0)], name="a", metadata={"preprocess": {"resize": 224}})
    again = store.put_bytes(_chunks(_bytes(0), 77))
    assert again.id == a.id and again.name == "a" and len(store.list()) == 1
    second = store.put_bytes([_bytes(0)], name="b", metadata={"preprocess": {"resize": 96}})
    assert second.id == a.id and second.name == "b" and second.names == ("a", "b")
    # the first name and its spec are untouched by the second
    assert store.get("a").metadata == {"preprocess": {"resize": 224}}
    assert store.get("b").metadata == {"preprocess": {"resize": 96}}
    with pytest.raises(errors.FailedPrecondition, match="belongs to model"):
        store.put_bytes([_bytes(2)], name="b")  # moving a name is explicit
    c = store.put_bytes([_bytes(2)], name="b", replace=True)
    assert store.get("b").id == c.id and store.get(a.id).names == ("a",)
    updated = store.update_metadata(c.id, {"k": [1, 2]})
    assert updated.metadata == {"k": [1, 2]}  # the model's own, under its name b (which holds none)
    restarted = ModelStore(tmp_path)
    assert restarted.get("b") == store.get("b") and restarted.get(a.id).names == ("a",)
    assert restarted.get("a").metadata == {"preprocess": {"resize": 224}}
    removed = restarted.delete("a")  # by its last name: the model goes
    assert removed.id == a.id and [e.id for e in restarted.list()] == [c.id]
    with pytest.raises(errors.InvalidArgument, match="looks like a model id"):
        store.put_bytes([_bytes(0)], name="deadbeef00")


def test_deleting_one_name_keeps_the_model_and_its_other_names(tmp_path):
    store = ModelStore(tmp_path)
    a = store.put_bytes([_bytes(0)], name="a")
    store.put_bytes([_bytes(0)], name="b")
    store.delete("a")
    assert store.get("b").id == a.id and store.get(a.id).names == ("b",)
    with pytest.raises(errors.NotFound):
        store.get("a")
    store.delete(a.id)  # by id: the model and every name
    assert store.list() == []
    with pytest.raises(errors.NotFound):
        store.get("b")


@pytest.mark.parametrize("data", [b"", b"\x08\x07", b"this is not a model at all" * 10,
                                  _bytes()[:-100]])
def test_garbage_rejected_and_nothing_left(tmp_path, data):
    store = ModelStore(tmp_path)
    with pytest.raises(errors.InvalidArgument):
        store.put_bytes([data])
    assert store.list() == [] and list((tmp_path / ".tmp").iterdir()) == []


def test_max_bytes(tmp_path):
    store = ModelStore(tmp_path)
    data = _bytes()
    with pytest.raises(errors.ResourceExhausted, match=str(len(data) - 1)):
        store.put_bytes(_chunks(data), max_bytes=len(data) - 1)
    assert store.list() == [] and list((tmp_path / ".tmp").iterdir()) == []
    assert store.put_bytes(_chunks(data), max_bytes=len(data)).size_bytes == len(data)


def test_leftovers_cleaned_on_start(tmp_path):
    ModelStore(tmp_path)
    junk = tmp_path / ".tmp" / "abc123"
    junk.mkdir()
    (junk / "model.onnx").write_bytes(_bytes()[:500])
    store = ModelStore(tmp_path)
    assert list((tmp_path / ".tmp").iterdir()) == [] and store.list() == []


def test_kill_during_upload_leaves_nothing(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(REPO)!r}, {str(REPO / "tests")!r}]
        from factory import small_cnn
        from inspector.store.model_store import ModelStore
        data = small_cnn().SerializeToString()
        def slow():
            yield data[:1000]
            print("started", flush=True)
            time.sleep(60)
            yield data[1000:]
        ModelStore({str(tmp_path)!r}).put_bytes(slow(), name="x")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        assert any((tmp_path / ".tmp").rglob("model.onnx"))  # the partial upload exists
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    store = ModelStore(tmp_path)
    assert store.list() == [] and list((tmp_path / ".tmp").iterdir()) == []


def test_concurrent_writers(tmp_path):
    store = ModelStore(tmp_path)
    payloads = [_bytes(seed) for seed in range(4)]
    results, failures = [], []

    def upload(i: int) -> None:
        try:
            results.append(store.put_bytes(_chunks(payloads[i % 4], 512), name=f"m{i % 4}"))
        except Exception as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(results) == 12
    entries = ModelStore(tmp_path).list()
    assert sorted(e.id for e in entries) == sorted(hashlib.sha256(p).hexdigest() for p in payloads)
    for e in entries:
        assert hashlib.sha256(e.path.read_bytes()).hexdigest() == e.id
        assert store.get(e.name).id == e.id


def _external_model(folder: Path, location: str = "weights.bin") -> tuple[Path, onnx.ModelProto]:
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    model = small_cnn()
    path = folder / "net.onnx"
    onnx.save_model(small_cnn(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path, model


def test_put_path_with_external_data(tmp_path):
    src, model = _external_model(tmp_path / "src", "data/weights.bin")
    store = ModelStore(tmp_path / "store")
    entry = store.put_path(src, name="ext")
    assert entry.id == hashlib.sha256(src.read_bytes()).hexdigest()
    assert (entry.path.parent / "data" / "weights.bin").is_file()
    assert entry.size_bytes == src.stat().st_size + (src.parent / "data" / "weights.bin").stat().st_size
    loaded = onnx.load(entry.path)  # loads (and checks) the copied external data
    for a, b in zip(loaded.graph.initializer, model.graph.initializer, strict=True):
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))
    with pytest.raises(errors.InvalidArgument, match="external data"):
        store.put_bytes([src.read_bytes()])


def _relocated(folder: Path, location: str) -> Path:
    """A model whose external data points at `location`."""
    src, _ = _external_model(folder)
    proto = onnx.load(src, load_external_data=False)
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(proto, src)
    return src


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlink"])
def test_put_path_refuses_escapes(tmp_path, case):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(os.urandom(100_000))
    folder = tmp_path / "m"
    if case == "absolute":
        src = _relocated(folder, str(secret))
    elif case == "dotdot":
        src = _relocated(folder, "../secret.bin")
    else:
        src = _relocated(folder, "link.bin")
        (folder / "link.bin").symlink_to(secret)
    store = ModelStore(tmp_path / "store")
    with pytest.raises(errors.InvalidArgument, match="external data location"):
        store.put_path(src)
    assert store.list() == [] and list((tmp_path / "store" / ".tmp").iterdir()) == []


def test_put_path_missing_file(tmp_path):
    with pytest.raises(errors.InvalidArgument, match="no model file"):
        ModelStore(tmp_path / "s").put_path(tmp_path / "absent.onnx")


def test_restore_resolves_a_name_left_on_two_entries(tmp_path):
    store = ModelStore(tmp_path)
    old = store.put_bytes([_bytes(0)], name="x")
    new = store.put_bytes([_bytes(1)])
    # a crash between the two meta.json writes of a name move leaves the name on both
    for entry, stamp in ((old, 100.0), (new, 200.0)):
        meta = json.loads((entry.path.parent / "meta.json").read_text())
        meta.update(names={"x": {"metadata": {}, "updated": stamp}}, updated=stamp)
        (entry.path.parent / "meta.json").write_text(json.dumps(meta))
    restored = ModelStore(tmp_path)
    assert restored.get("x").id == new.id and restored.get(old.id).name is None


def test_entries_written_before_names_were_aliases_keep_their_name(tmp_path):
    store = ModelStore(tmp_path)
    entry = store.put_bytes([_bytes(0)], metadata={"preprocess": {"resize": 64}})
    meta = json.loads((entry.path.parent / "meta.json").read_text())
    del meta["names"]
    meta["name"] = "legacy"
    (entry.path.parent / "meta.json").write_text(json.dumps(meta))
    restored = ModelStore(tmp_path).get("legacy")
    assert restored.id == entry.id and restored.metadata == {"preprocess": {"resize": 64}}


def test_id_prefixes(tmp_path):
    store = ModelStore(tmp_path)
    entry = store.put_bytes([_bytes(0)])
    twin = tmp_path / (entry.id[:10] + "0" * 54)  # a second entry sharing a 10-digit prefix
    shutil.copytree(entry.path.parent, twin)
    store = ModelStore(tmp_path)
    assert store.get(entry.id[:11]).id == entry.id and store.get(entry.id.upper()[:12]).id == entry.id
    with pytest.raises(errors.InvalidArgument, match="matches 2 models"):
        store.get(entry.id[:10])
    with pytest.raises(errors.NotFound):
        store.get(entry.id[:7])  # too short to be a prefix
