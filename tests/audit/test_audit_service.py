"""AuditStats through a real server: equals the in-process audit, resumes exactly, CLI report."""

import json

import numpy as np
from audit_models import planted_images, planted_model

from inspector.audit.audit import AuditRun
from inspector.runtime.access import OrtModelAccess


def _reference(model, images, labels=None):
    run = AuditRun(model, name="planted")
    access = OrtModelAccess(model)
    for i in range(0, len(images), 4):
        run.update(access.forward(images[i:i + 4], fetch=run.tensors),
                   None if labels is None else labels[i:i + 4], batch_size=len(images[i:i + 4]))
    return run.result()


def _flags(audit):
    return {(t, c["index"], f) for t, layer in audit["layers"].items() for c in layer["channels"] for f in c["flags"]}


def test_server_audit_equals_in_process_and_flags_the_planted_defects(client):
    model = planted_model()
    client.load_model(model.SerializeToString(), name="planted")
    images = planted_images()
    audit = client.audit("planted", [images[i:i + 4] for i in range(0, len(images), 4)])
    ref = _reference(model, images)
    assert audit["images"] == len(images) == ref["images"]
    assert _flags(audit) == _flags(ref) and _flags(audit)  # the planted channels are found
    for name, layer in ref["layers"].items():
        for got, want in zip(audit["layers"][name]["channels"], layer["channels"], strict=True):
            for key in ("mean", "min", "max", "zero_fraction"):
                assert got[key] == want[key] or abs(got[key] - want[key]) <= 1e-6 * max(1, abs(want[key]))


def test_resume_from_a_checkpoint_equals_one_pass(client):
    model = planted_model()
    client.load_model(model.SerializeToString(), name="planted")
    images = planted_images()
    batches = [images[i:i + 4] for i in range(0, len(images), 4)]
    whole = client.audit("planted", batches)
    seen = []
    half = len(batches) // 2
    client.audit("planted", batches[:half], checkpoint_every=1, on_progress=seen.append)
    state = [p.previews["state"] for p in seen if "state" in p.previews][-1]
    resumed = client.audit("planted", batches[half:], resume_state=state)
    assert resumed["images"] == whole["images"]
    assert json.dumps(resumed["layers"], sort_keys=True) == json.dumps(whole["layers"], sort_keys=True)


def test_labels_give_accuracy(client, tmp_path):
    model = planted_model()
    client.load_model(model.SerializeToString(), name="planted")
    images = planted_images()
    access = OrtModelAccess(model)
    predicted = access.forward(images)[access.output_names[0]].argmax(axis=1)
    labels = predicted.copy()
    labels[:5] = (labels[:5] + 1) % 10  # five wrong
    audit = client.audit("planted", [images[i:i + 4] for i in range(0, len(images), 4)], labels=labels.tolist())
    assert audit["behaviour"]["accuracy"] == (len(images) - 5) / len(images)


def test_cli_audit_writes_the_report(client, server, tmp_path, capsys):
    from inspector.cli.main import main

    model = planted_model()
    client.load_model(model.SerializeToString(), name="planted")
    np.save(tmp_path / "batch.npy", planted_images())
    code = main(["audit", "planted", str(tmp_path / "batch.npy"), "--out", str(tmp_path / "report"),
                 "--server", server.address, "--batch-size", "4"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert _flags(report) == _flags(_reference(model, planted_images()))
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4  # plots plus Grad-CAM overlays and a feature grid
    assert not (tmp_path / "report" / "audit-checkpoint.json").exists()


def test_cli_resumes_from_its_checkpoint(client, server, tmp_path, capsys):
    from inspector.cli.main import main

    model = planted_model()
    info = client.load_model(model.SerializeToString(), name="planted")
    images = planted_images()
    np.save(tmp_path / "batch.npy", images)
    seen = []  # an interrupted first run: only the first 8 images were sent
    client.audit("planted", [images[i:i + 1] for i in range(8)], checkpoint_every=8, on_progress=seen.append)
    out = tmp_path / "report"
    out.mkdir()
    (out / "audit-checkpoint.json").write_text(json.dumps({
        "model": info.id, "images": len(images), "done": 8, "state": json.loads(seen[-1].previews["state"])}))
    code = main(["audit", "planted", str(tmp_path / "batch.npy"), "--out", str(out), "--server", server.address])
    assert code == 0
    assert "resuming after 8" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    whole = _reference(model, images)
    assert report["images"] == len(images)
    assert _flags(report) == _flags(whole)
    for name, layer in whole["layers"].items():  # other batch boundaries: equal up to float32 sums
        for got, want in zip(report["layers"][name]["channels"], layer["channels"], strict=True):
            for key in ("min", "max", "zero_fraction"):
                assert got[key] == want[key], (name, key)
            peak = max(abs(want["min"]), abs(want["max"]))
            assert abs(got["mean"] - want["mean"]) <= 1e-6 * peak, name
            assert abs(got["std"] - want["std"]) <= 6e-4 * want["std"] + 1e-6 * peak, name


def _raw_answer(client, model: str, batches, columnar: bool) -> dict:
    """The items of an AuditStats answer as a client in another language sees them."""
    from inspector_client.client import _input
    from inspector_client.v1 import inspector_pb2 as pb

    requests = [pb.AuditRequest(header=pb.AuditHeader(model=model, columnar=columnar)),
                *(pb.AuditRequest(batch=_input(b, None)) for b in batches)]
    return client._results(client._stub.AuditStats(iter(requests), metadata=client._stream_metadata())).group("audit")


def test_columnar_answer_rebuilds_exactly_the_json_answer(client):
    """The bundled client asks for columns and rebuilds report.json's objects: byte for byte what the
    JSON answer holds, flags, saturation fields (HardSigmoid only) and nulls (all-NaN images) included."""
    model = planted_model()
    client.load_model(model.SerializeToString(), name="planted")
    images = planted_images()
    batches = [images[i:i + 4] for i in range(0, len(images), 4)]
    for chosen in (batches, [np.full_like(images[:4], np.nan)]):
        plain, columns = _raw_answer(client, "planted", chosen, False), _raw_answer(client, "planted", chosen, True)
        assert set(plain) == {"audit"} and set(columns) == {"audit", "channel_stats", "channel_flags"}
        layers = json.loads(columns["audit"])["layers"]
        assert all("columns" in layer and "channels" not in layer for layer in layers.values())
        assert columns["channel_stats"].shape == (11, sum(len(c["channels"]) for c in
                                                          json.loads(plain["audit"])["layers"].values()))
        got = client.audit("planted", chosen)
        assert json.dumps(got, sort_keys=False) == plain["audit"].decode()
    assert all(c["mean"] is None for layer in got["layers"].values() for c in layer["channels"])
    assert "saturation_fraction" in got["layers"]["hsig_out"]["channels"][0]
    assert "saturation_fraction" not in got["layers"]["relu1_out"]["channels"][0]
