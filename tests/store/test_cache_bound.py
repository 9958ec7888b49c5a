"""The bounded local cache of an S3 store (inspector.store.s3), over the real SeaweedFS server:
least recently used models nobody holds are evicted, whole, and fetched again (verified) on next
use; a model open in a core is never evicted; a model larger than the bound is still served; the
`inspector serve` flag reaches the store and the metrics gauge."""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import urllib.request

import numpy as np
import pytest
from factory import small_cnn
from s3_server import BUCKET

from inspector.store import open_store


def _bytes(seed: int) -> bytes:
    return small_cnn(seed=seed).SerializeToString()


def _cached(store) -> set[str]:
    return {model_id for model_id, _ in store.backend.cache_entries()}


def _folder_bytes(store, model_id: str) -> int:
    return sum(f.stat().st_size for f in (store.root / model_id).rglob("*") if f.is_file())


def _downloads(store) -> list[str]:
    """Count the bucket downloads of a store (the keys, in order)."""
    seen, download = [], store.backend._download

    def counting(key, target):
        seen.append(key)
        return download(key, target)

    store.backend._download = counting
    return seen


def test_lru_models_are_evicted_under_the_bound_and_fetched_back_verified(aws_env, tmp_path):
    spec = f"s3://{BUCKET}/bound-lru"
    probe = open_store(spec, cache_dir=tmp_path / "probe", ttl_s=0)
    first = probe.put_bytes([_bytes(0)])
    size = _folder_bytes(probe, first.id)  # model.onnx + meta.json; every seed is the same size
    bound = int(2.5 * size)

    writer = open_store(spec, cache_dir=tmp_path / "w", ttl_s=0, cache_max_bytes=bound)
    ids = [writer.put_bytes([_bytes(s)], name=f"m{s}").id for s in range(2)]
    writer.get("m0")  # m0 is now more recent than m1
    ids += [writer.put_bytes([_bytes(s)], name=f"m{s}").id for s in (2, 3)]
    assert _cached(writer) == {ids[2], ids[3]}  # m1 went for m2, then m0 for m3
    assert writer.cache_bytes() <= bound and not (tmp_path / "w" / ids[1]).exists()
    assert not list((tmp_path / "w" / ".tmp").iterdir())  # evicted folders are gone, not parked

    reader = open_store(spec, cache_dir=tmp_path / "r", ttl_s=0, cache_max_bytes=bound)
    fetched = _downloads(reader)
    for ref in ("m0", "m1", "m0", "m2", "m3"):  # fetches: m0, m1, (m0 cached), m2 evicts m1, m3 evicts m0
        reader.get(ref)
    assert _cached(reader) == {ids[2], ids[3]} and reader.cache_bytes() <= bound
    assert [k.split("/")[-2] for k in fetched] == [ids[0], ids[1], ids[2], ids[3]]

    back = reader.get("m0")  # evicted: fetched again, sha256-verified, byte-identical
    assert hashlib.sha256(back.path.read_bytes()).hexdigest() == ids[0] and back.path.read_bytes() == _bytes(0)
    assert len(fetched) == 5 and _cached(reader) == {ids[3], ids[0]} and reader.cache_bytes() <= bound


def test_an_open_model_is_never_evicted_and_its_answers_stay_right(aws_env, tmp_path, caplog):
    import onnxruntime as ort

    from inspector import InputData, Inspector, InspectorConfig

    spec = f"s3://{BUCKET}/bound-open"
    probe = open_store(spec, cache_dir=tmp_path / "probe", ttl_s=0)
    size = _folder_bytes(probe, probe.put_bytes([_bytes(10)]).id)
    core = Inspector(InspectorConfig(store_dir=tmp_path / "unused", vetting=False))
    store = core.models.store = open_store(spec, cache_dir=tmp_path / "c", ttl_s=0, cache_max_bytes=int(1.5 * size))
    model = small_cnn(seed=11)
    info = core.upload([model.SerializeToString()], name="open")  # open in the core: held
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]

    with caplog.at_level(logging.WARNING, logger="inspector.store.s3"):
        others = [store.put_bytes([_bytes(s)]).id for s in (12, 13, 14)]  # each would evict the LRU
    assert info.id in _cached(store) and _cached(store) == {info.id, others[-1]}  # the others went
    assert "above its bound" in caplog.text  # two models in a cache for one and a half, reported
    core.sessions.evict((info.id,))  # the next run loads its session from the cached file again
    logits = core.infer("open", InputData(tensor=x)).outputs["logits"]
    np.testing.assert_allclose(logits, plain, rtol=1e-5, atol=1e-5)

    other_replica = open_store(spec, cache_dir=tmp_path / "c", ttl_s=0)  # same cache folder: its holds count
    with other_replica.hold(others[-1]):
        store.put_bytes([_bytes(15)])
        assert {info.id, others[-1]} <= _cached(store)  # both held, one in this core, one elsewhere

    core.models._drop(info.id)  # closed: nothing refers to its access any more
    gc.collect()
    store.put_bytes([_bytes(16)])
    assert info.id not in _cached(store)  # no longer held: evicted like any other
    logits = core.infer("open", InputData(tensor=x)).outputs["logits"]  # fetched again and reopened
    assert info.id in _cached(store)
    np.testing.assert_allclose(logits, plain, rtol=1e-5, atol=1e-5)


def test_holds_and_evictions_racing_in_threads(aws_env, tmp_path):
    """One thread reads a held model over and over while another fetches models through a cache
    that fits one: the held files are never missing; the others churn."""
    spec = f"s3://{BUCKET}/bound-race"
    writer = open_store(spec, cache_dir=tmp_path / "w", ttl_s=0)
    ids = [writer.put_bytes([_bytes(s)]).id for s in range(20, 24)]
    store = open_store(spec, cache_dir=tmp_path / "c", ttl_s=0, cache_max_bytes=_folder_bytes(writer, ids[0]))
    fetched = _downloads(store)
    stop, faults = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            with store.hold(ids[0]) as held:
                for _ in range(3):
                    try:
                        data = (held.folder / "model.onnx").read_bytes()
                    except OSError as exc:
                        faults.append(f"held model gone: {exc}")
                        return
                    if hashlib.sha256(data).hexdigest() != ids[0]:
                        faults.append("held model changed")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(3):
            for model_id in ids[1:]:
                entry = store.get(model_id)
                if hashlib.sha256(entry.path.read_bytes()).hexdigest() != model_id:
                    faults.append(f"{model_id[:8]} bad")
    finally:
        stop.set()
        thread.join()
    assert faults == [] and _cached(store) <= set(ids)
    assert sum(k.split("/")[-2] != ids[0] for k in fetched) == 9  # the others never stayed: fetched each time


def test_a_model_larger_than_the_bound_is_still_served(aws_env, tmp_path, caplog):
    spec = f"s3://{BUCKET}/bound-large"
    writer = open_store(spec, cache_dir=tmp_path / "w", ttl_s=0, cache_max_bytes=1000)
    with caplog.at_level(logging.WARNING, logger="inspector.store.s3"):
        big = writer.put_bytes([_bytes(30)], name="big")
    assert big.path.read_bytes() == _bytes(30) and big.size_bytes > 1000
    assert "above its bound of 1000 bytes" in caplog.text
    reader = open_store(spec, cache_dir=tmp_path / "r", ttl_s=0, cache_max_bytes=1000)
    assert reader.get("big").path.read_bytes() == _bytes(30)
    other = writer.put_bytes([_bytes(31)])
    assert _cached(writer) == {other.id}  # the first one went to make (what room there is) for it
    assert reader.get("big").path.read_bytes() == _bytes(30)
    (reader.root / big.id / "meta.json").unlink()  # a folder this store did not make: fetched again
    with reader.hold("big") as held:
        assert (held.folder / "model.onnx").read_bytes() == _bytes(30) and (held.folder / "meta.json").is_file()


def test_the_serve_flag_reaches_the_store_and_the_gauge(aws_env, tmp_path):
    from inspector.cli.main import build_parser
    from inspector.cli.serve import config_from_args
    from inspector.service.server import start_server

    spec = f"s3://{BUCKET}/bound-flag"
    args = build_parser().parse_args(["serve", "--store", spec, "--store-cache", str(tmp_path / "c"),
                                      "--store-cache-max-gb", "0.5"])
    config = config_from_args(args)
    assert config.store_cache_max_bytes == 1 << 29
    config.vetting = False
    running = start_server(config, port=0, metrics_port=0)
    try:
        store = running.inspector.store
        assert store.backend.max_bytes == 1 << 29 and store.root == tmp_path / "c"
        entry = running.inspector.upload([_bytes(40)], name="m")
        with urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=10) as got:
            text = got.read().decode()
        gauge = next(line for line in text.splitlines() if line.startswith("inspector_store_cache_bytes "))
        assert float(gauge.split()[1]) == _folder_bytes(store, entry.id) == store.cache_bytes()
    finally:
        running.stop(grace=0.5)
    assert config_from_args(build_parser().parse_args(["serve"])).store_cache_max_bytes is None


@pytest.mark.parametrize("spec", ["plain", "shared"])
def test_other_stores_hold_nothing_and_have_no_cache(tmp_path, spec):
    from inspector.store import hold

    store = open_store(tmp_path / "s" if spec == "plain" else f"shared:{tmp_path / 's'}")
    entry = store.put_bytes([_bytes(50)])
    with hold(store, entry.id):
        assert entry.path.read_bytes() == _bytes(50)
    assert getattr(store, "cache_bytes", lambda: None)() is None
