"""Prediction summary, report.json contract and the self-contained report.html."""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter

import numpy as np
import pytest
from audit_models import IMAGES, OrtAccess, planted_images
from PIL import Image

from inspector.audit import AuditRun, PredictionTally, audit_model, write_report
from inspector.errors import InvalidArgument

CHANNEL_KEYS = {"index", "mean", "std", "min", "max", "zero_fraction", "flags"}
CHANNEL_FLAGS = {"dead", "rarely_active", "saturated", "range_outlier"}


def _png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_prediction_summary_with_labels(planted):
    images = planted_images()
    labels = np.random.default_rng(5).integers(0, 10, IMAGES)
    access = OrtAccess(planted)
    logits = access.forward(images)["logits"]
    audit = audit_model(access, [(images[:60], labels[:60]), (images[60:], labels[60:])])
    predicted = logits.argmax(axis=1)
    behaviour = audit["behaviour"]
    assert behaviour["predicted_histogram"] == {str(k): int(v) for k, v in sorted(Counter(predicted).items())}
    assert behaviour["accuracy"] == np.mean(predicted == labels)
    wrong = Counter((int(t), int(p)) for t, p in zip(labels, predicted, strict=True) if t != p)
    top = behaviour["top_confusions"]
    assert len(top) == min(10, len(wrong))
    assert all(wrong[(c["true"], c["predicted"])] == c["count"] for c in top)
    assert top[0]["count"] == max(wrong.values())


def test_tally_merge_and_round_trip_and_bad_labels():
    rng = np.random.default_rng(0)
    scores, labels = rng.standard_normal((30, 4)), rng.integers(0, 4, 30)
    whole, a = PredictionTally(), PredictionTally()
    whole.update(scores, labels)
    a.update(scores[:11], labels[:11])
    b = PredictionTally.from_dict(json.loads(json.dumps(PredictionTally().to_dict())))
    b.update(scores[11:], labels[11:])
    a.merge(PredictionTally.from_dict(json.loads(json.dumps(b.to_dict()))))
    assert a.result() == whole.result()
    with pytest.raises(InvalidArgument, match="one integer class per image"):
        whole.update(scores, labels[:5])
    with pytest.raises(InvalidArgument, match="not \\[N, classes\\]"):
        whole.update(np.zeros((3, 1)))


def test_report_json_contract_and_self_contained_html(planted, tmp_path):
    images = planted_images()
    audit = audit_model(OrtAccess(planted), [images], name="planted")
    extra = {"correct/cat.png": _png((200, 30, 30)), "wrong/dog.png": _png((30, 30, 200))}
    paths = write_report(audit, tmp_path / "out", extra)
    saved = json.loads(paths["json"].read_text())
    assert saved["model"] == "planted" and saved["images"] == IMAGES
    for name, layer in saved["layers"].items():
        assert isinstance(layer["op_type"], str) and isinstance(layer["shape"], list)
        assert len(layer["channels"]) == layer["shape"][1]
        for i, c in enumerate(layer["channels"]):
            assert CHANNEL_KEYS <= set(c) and c["index"] == i and set(c["flags"]) <= CHANNEL_FLAGS
            assert all(isinstance(c[k], float) for k in CHANNEL_KEYS - {"index", "flags"}), name
    for name, w in saved["weights"].items():
        assert isinstance(w["layer"], str)
        for i, f in enumerate(w["filters"]):
            assert f["index"] == i and isinstance(f["l2_norm"], float)
            assert set(f["flags"]) <= {"near_zero", "duplicate"}, name
    assert saved == json.loads(json.dumps(audit))

    page = paths["html"].read_text()
    assert "http" not in page.replace("http-equiv", "")  # nothing to fetch: readable without a server
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 5  # three plots and the two extra images
    decoded = [Image.open(io.BytesIO(base64.b64decode(u))) for u in uris]
    assert all(img.size[0] > 10 for img in decoded)
    assert [d.getpixel((3, 3)) for d in decoded[3:]] == [(200, 30, 30), (30, 30, 200)]
    assert page.index(">correct<") < page.index(">wrong<")
    for tensor in ("conv1_out", "relu1_out", "hsig_out", "conv1.weight"):
        assert f">{tensor}<" in page


def test_empty_audit_and_bad_input_fail_clearly(planted, tmp_path):
    run = AuditRun(planted)
    assert run.result()["images"] == 0
    write_report(run.result(), tmp_path)  # a report of nothing is still a valid page
    with pytest.raises(InvalidArgument, match="'layers'"):
        write_report({"model": "m", "images": 0}, tmp_path)
    with pytest.raises(InvalidArgument, match="nope"):
        AuditRun(planted, ["nope"])
