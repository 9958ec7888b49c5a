"""The planted-defect model: an audit at default thresholds flags exactly the planted channels and filters."""

from __future__ import annotations

import dataclasses

import numpy as np
from audit_models import (
    BRIGHT_IMAGE,
    EXPECTED_CHANNEL_FLAGS,
    EXPECTED_FILTER_FLAGS,
    IMAGES,
    OrtAccess,
    planted_images,
)

from inspector.audit import (
    ActivationAggregator,
    AuditRun,
    AuditThresholds,
    audit_model,
    channel_flags,
)


def _flagged(entries: list[dict]) -> dict[int, list[str]]:
    return {e["index"]: e["flags"] for e in entries if e["flags"]}


def test_audit_flags_exactly_the_planted_defects(planted):
    images = planted_images()
    audit = audit_model(OrtAccess(planted), [images[:50], images[50:]], name="planted")
    assert audit["model"] == "planted" and audit["images"] == IMAGES
    assert {n: _flagged(layer["channels"]) for n, layer in audit["layers"].items()} == EXPECTED_CHANNEL_FLAGS
    assert {n: _flagged(w["filters"]) for n, w in audit["weights"].items()} == EXPECTED_FILTER_FLAGS
    duplicates = {f["index"]: f["duplicate_of"] for f in audit["weights"]["conv1.weight"]["filters"]
                  if "duplicate" in f["flags"]}
    assert duplicates == {2: 3, 3: 2}
    assert audit["summary"]["flagged_channels"] == {"dead": 2, "rarely_active": 1, "saturated": 1,
                                                    "range_outlier": 2}


def test_rarely_active_means_one_image_in_a_hundred(planted):
    """Without the bright image relu1/1 is dead; with it twice in 120 images it is no longer rare."""
    images = planted_images()
    dark = np.delete(images, BRIGHT_IMAGE, axis=0)
    layers = audit_model(OrtAccess(planted), [dark])["layers"]
    assert layers["relu1_out"]["channels"][1]["flags"] == ["dead"]
    twice = images.copy()
    twice[BRIGHT_IMAGE + 1] = images[BRIGHT_IMAGE]
    layers = audit_model(OrtAccess(planted), [twice])["layers"]
    assert layers["relu1_out"]["channels"][1]["flags"] == []
    assert layers["relu1_out"]["channels"][1]["active_fraction"] == 2 / IMAGES


def test_thresholds_move_the_flags(planted):
    """Looser limits flag more: a 1.5x range outlier rule catches more channels, 0.5 cosine more duplicates."""
    images = planted_images()
    strict = dataclasses.replace(AuditThresholds(), range_outlier=1.5, duplicate_cosine=0.5)
    audit = audit_model(OrtAccess(planted), [images], thresholds=strict)
    maps = OrtAccess(planted).forward(images, fetch=["conv3_out"])["conv3_out"]
    peak = np.abs(np.moveaxis(maps, 1, 0).reshape(8, -1)).max(axis=1)
    expected = {i for i in range(8) if peak[i] > 1.5 * np.median(peak)}
    flagged = {c["index"] for c in audit["layers"]["conv3_out"]["channels"] if "range_outlier" in c["flags"]}
    assert flagged == expected and expected
    assert audit["summary"]["flagged_filters"]["duplicate"] > 2


def test_resumed_run_gives_the_same_audit(planted):
    images = planted_images()
    access = OrtAccess(planted)
    whole = audit_model(access, [images[:40], images[40:80], images[80:]])
    first = AuditRun(planted)
    first.update(access.forward(images[:40], fetch=first.tensors))
    state = first.to_dict()
    resumed = AuditRun.from_dict(planted, state)
    assert audit_model(access, [images[40:80], images[80:]], run=resumed) == whole


def test_flag_rules_on_hand_made_statistics():
    """A Clip(0, 6) tensor: an all-zero channel is dead (not also saturated); 6 everywhere is saturated;
    91 % at a bound is saturated, 90 % is not; a channel > 10x the median peak is a range outlier."""
    x = np.random.default_rng(0).uniform(0.5, 1.0, (10, 6, 10)).astype(np.float32)
    x[:, 0] = 0.0
    x[:, 1] = 6.0
    x[:, 2, :9], x[0, 2, 9] = 0.0, 6.0  # 91 of 100 values at a bound
    x[:, 3, :9] = 6.0  # exactly 90 %
    x[0, 5, 0] = 61.0  # channel peaks 0, 6, 6, 6, <1, 61: median 6
    agg = ActivationAggregator({"t": ("Clip", ["N", 6, 10])}, {"t": (0.0, 6.0)})
    agg.update({"t": x})
    stats = agg.result()["t"]
    peaks = np.abs(x).max(axis=(0, 2))
    assert peaks[5] > 10 * np.median(peaks) and np.sort(peaks)[-2] <= 10 * np.median(peaks)
    assert channel_flags(stats) == [["dead"], ["saturated"], ["saturated"], [], [], ["range_outlier"]]
    assert stats.saturation_fraction[3] == 0.9
