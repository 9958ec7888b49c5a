"""Dataset audits on Ray (inspector.audit.ray_engine) against a single-process audit.

One local cluster for the module (2 CPUs; workers at half a CPU so Ray Data's read tasks are not
starved), with HOME and Ray's temp folder under tmp (Ray writes an auth token in HOME).
"""

from __future__ import annotations

import argparse
import io
import json
import os

import numpy as np
import onnx
import pytest
from audit_models import planted_images, planted_model
from PIL import Image

from inspector.audit.audit import AuditRun, fold_batch
from inspector.runtime.access import OrtModelAccess

WORKER_CPUS = 0.5
ORDERED_FIELDS = ("min", "max", "zero_fraction", "active_fraction", "saturation_fraction",
                  "nonfinite_fraction", "p1", "p50", "p99")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    import ray  # the `ray` extra is in the test extra: a missing install fails here, it does not skip
    root = tmp_path_factory.mktemp("ray")
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR", "RAY_worker_niceness")}
    os.environ["HOME"], os.environ["RAY_TMPDIR"] = str(root), str(root / "t")
    os.environ["RAY_worker_niceness"] = "0"  # not Ray's 15: a busy machine would starve the workers
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(root / "t"), log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def planted_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "planted.onnx"
    onnx.save(planted_model(), path)
    return path


@pytest.fixture(scope="module")
def planted_npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("npy") / "batch.npy"
    np.save(path, planted_images())
    return path


def single_process(model, x, labels=None, batch=8):
    """What `inspector audit` through a server computes: fold_batch over OrtModelAccess, batches of 8."""
    access = OrtModelAccess(model)
    run = AuditRun(model, name="planted", memo=access.memo)
    for i in range(0, len(x), batch):
        fold_batch(access, run, x[i:i + batch], None if labels is None else labels[i:i + batch])
    return run.result()


def exact_reference(model, x):
    """tests/audit/test_audit_service.py's reference: full tensors, batches of 4."""
    run = AuditRun(model, name="planted")
    access = OrtModelAccess(model)
    for i in range(0, len(x), 4):
        run.update(access.forward(x[i:i + 4], fetch=run.tensors), batch_size=len(x[i:i + 4]))
    return run.result()


def _flags(audit):
    return {(t, c["index"], f) for t, layer in audit["layers"].items() for c in layer["channels"] for f in c["flags"]}


def assert_same_audit(got: dict, want: dict) -> None:
    """Counts, extremes, fractions and percentiles exact; mean and std to float64 merge rounding."""
    assert got["images"] == want["images"]
    assert got["skipped_tensors"] == want["skipped_tensors"]
    assert got["summary"] == want["summary"] and got["weights"] == want["weights"]
    assert got["behaviour"] == want["behaviour"]
    assert _flags(got) == _flags(want)
    assert list(got["layers"]) == list(want["layers"])
    for name, layer in want["layers"].items():
        assert got["layers"][name]["flag_counts"] == layer["flag_counts"]
        for g, w in zip(got["layers"][name]["channels"], layer["channels"], strict=True):
            for key in ORDERED_FIELDS:
                assert g.get(key) == w.get(key), (name, g["index"], key)
            peak = max(abs(w["min"]), abs(w["max"]))
            assert abs(g["mean"] - w["mean"]) <= 1e-9 * peak, (name, g["index"])
            assert abs(g["std"] - w["std"]) <= 1e-9 * peak, (name, g["index"])


def test_audit_run_merge_of_shards_equals_one_pass():
    """AuditRun.merge (no Ray): shards of whole batches merged in order equal one pass."""
    model, x = planted_model(), planted_images()
    labels = np.arange(len(x)) % 10
    whole = single_process(model, x, labels)
    access = OrtModelAccess(model)
    merged = AuditRun(model, name="planted")
    for start in range(0, len(x), 32):
        part = AuditRun(model, name="planted", memo=access.memo)
        for i in range(start, min(start + 32, len(x)), 8):
            fold_batch(access, part, x[i:i + 8], labels[i:i + 8])
        merged.merge(AuditRun.from_dict(model, json.loads(json.dumps(part.to_dict())), name="planted"))
    assert_same_audit(merged.result(), whole)
    empty = AuditRun(model, name="planted")
    merged.merge(empty)  # a partial that saw nothing adds nothing
    assert merged.result()["images"] == len(x)


LABELS = (np.arange(120) * 7) % 10


@pytest.fixture(scope="module")
def calm(ray_cluster, planted_file, planted_npy):
    """The planted images from an .npy batch on 2 workers, shards of 2 batches, with labels."""
    from inspector.audit.ray_engine import ray_audit

    return ray_audit(planted_file, [str(planted_npy)], workers=2, worker_cpus=WORKER_CPUS, name="planted",
                     labels=LABELS.tolist(), shard_batches=2)


def test_ray_audit_equals_a_single_process_audit(calm):
    model, x = planted_model(), planted_images()
    assert calm.images == len(x) == len(LABELS) and calm.shards == 8  # 120 images, shards of 16
    assert_same_audit(calm.report, single_process(model, x, LABELS))
    assert calm.report["behaviour"]["accuracy"] is not None
    exact = exact_reference(model, x)
    assert _flags(calm.report) == _flags(exact) and _flags(exact)  # the planted defects are found
    for name, layer in exact["layers"].items():  # the audit graph's float32 sums against full tensors
        for got, want in zip(calm.report["layers"][name]["channels"], layer["channels"], strict=True):
            for key in ("min", "max", "zero_fraction"):
                assert got[key] == want[key], (name, key)
            peak = max(abs(want["min"]), abs(want["max"]))
            assert abs(got["mean"] - want["mean"]) <= 1e-6 * peak, name
            assert abs(got["std"] - want["std"]) <= 6e-4 * want["std"] + 1e-6 * peak, name


def test_workers_killed_mid_run_change_nothing(calm, planted_file, planted_npy, tmp_path):
    """The worker that takes shard 1 (after shard 0) dies: its process exits; later the one that
    takes shard 4 is killed by Ray (ray.kill, restartable). Ray Data restarts each actor and
    retries its shard: the report is the same, bit for bit."""
    from inspector.audit.ray_engine import ray_audit

    faults = [{"shard": 1, "marker": str(tmp_path / "exit"), "how": "exit"},
              {"shard": 4, "marker": str(tmp_path / "kill"), "how": "kill"}]
    hurt = ray_audit(planted_file, [str(planted_npy)], workers=2, worker_cpus=WORKER_CPUS, name="planted",
                     labels=LABELS.tolist(), shard_batches=2, faults=faults)
    assert (tmp_path / "exit").exists() and (tmp_path / "kill").exists()  # both faults fired
    assert json.dumps(hurt.report, sort_keys=True) == json.dumps(calm.report, sort_keys=True)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_sources_folder_glob_list_and_npy(tmp_path, planted_npy):
    from inspector.audit.ray_engine import NO_ROW, Item, resolve_sources

    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/2.png", "a/b/1.jpg", "a/notes.md"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# two\na/b/1.jpg\n\n" + str(planted_npy) + "\n")
    pngs = [str((tmp_path / n).resolve()) for n in ("a/2.png", "a/b/1.jpg")]
    assert resolve_sources([str(tmp_path / "a")]) == [Item(p) for p in pngs]
    assert resolve_sources([str(tmp_path / "a" / "*.png")]) == [Item(pngs[0])]
    listed = resolve_sources([str(tmp_path / "list.txt")])
    assert listed[0] == Item(pngs[1], NO_ROW) and listed[1:] == [Item(str(planted_npy), i) for i in range(120)]
    with pytest.raises(Exception, match="no image"):
        resolve_sources([str(tmp_path / "missing.png")])


def test_uri_sources_are_listed_and_read_through_pyarrow(tmp_path):
    """s3:// and gs:// go the way file:// goes here: pyarrow's file systems list and read them."""
    from inspector.audit.ray_engine import Item, _input_spec, decode_shard, resolve_sources
    from inspector.imaging.preprocess import preprocess_images

    rng = np.random.default_rng(3)
    pngs = [_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(3)]
    (tmp_path / "sub").mkdir()
    for i, data in enumerate(pngs):
        (tmp_path / ("sub" if i else "") / f"{i}.png").write_bytes(data)
    items = resolve_sources([f"file://{tmp_path}"])
    assert items == [Item(f"file://{tmp_path}/0.png"), Item(f"file://{tmp_path}/sub/1.png"),
                     Item(f"file://{tmp_path}/sub/2.png")]
    spec = _input_spec(planted_model(), None)
    x = decode_shard([i.path for i in items], [i.row for i in items], spec)
    np.testing.assert_array_equal(x, preprocess_images(pngs, spec))


def test_cli_engine_reads_a_folder_of_images_and_writes_the_report(ray_cluster, planted_file, tmp_path, capsys):
    """run_ray_audit over a folder of PNGs (decoded with the model's preprocessing on Ray):
    report.json and report.html, equal to a single-process audit of the same images."""
    from inspector.audit.ray_engine import _input_spec, run_ray_audit
    from inspector.imaging.preprocess import preprocess_images

    rng = np.random.default_rng(1)
    folder = tmp_path / "images"
    folder.mkdir()
    pngs = [_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(36)]
    for i, data in enumerate(pngs):
        (folder / f"img{i:03d}.png").write_bytes(data)
    model = planted_model()
    want = single_process(model, preprocess_images(pngs, _input_spec(model, None)))
    out = tmp_path / "report"
    args = argparse.Namespace(model=str(planted_file), images=[str(folder)], out=str(out), layers=None, labels=None,
                              batch_size=8, address=None, workers=2, store=None, worker_cpus=WORKER_CPUS)
    assert run_ray_audit(args) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "planted"
    assert_same_audit(report, json.loads(json.dumps(want)))
    # plots, Grad-CAM overlays of a sample and a feature grid, as in a single-process report
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 4
    assert "36 images" in capsys.readouterr().out


def test_an_unreadable_image_is_named_in_the_error(ray_cluster, planted_file, tmp_path, capsys):
    from inspector.audit.ray_engine import run_ray_audit

    rng = np.random.default_rng(2)
    for i in range(9):
        (tmp_path / f"img{i}.png").write_bytes(_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)))
    (tmp_path / "img4.png").write_bytes(b"not a picture")
    args = argparse.Namespace(model=str(planted_file), images=[str(tmp_path / "*.png")], out=str(tmp_path / "out"),
                              layers=None, labels=None, batch_size=8, address=None, workers=1, store=None)
    assert run_ray_audit(args) == 2
    assert f"{tmp_path / 'img4.png'}: The bytes are not an image" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_model_from_a_local_store_with_its_preprocessing(tmp_path, planted_file):
    from inspector.audit.ray_engine import _stored_model
    from inspector.store.model_store import ModelStore

    store = ModelStore(tmp_path / "store")
    stored = store.put_path(planted_file, name="planted", metadata={"preprocess": {"resize": [16, 16]}})
    path, spec, name = _stored_model(str(tmp_path / "store"), "planted")
    assert (path, spec, name) == (str(stored.path), {"resize": [16, 16]}, "planted")
    assert _stored_model(str(tmp_path / "store"), stored.id[:10])[0] == str(stored.path)
    with pytest.raises(Exception, match="no models"):
        _stored_model(str(tmp_path / "store"), "other")
