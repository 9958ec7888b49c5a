"""Health flags for channels, from aggregated statistics, at documented thresholds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.audit.aggregate import LayerStats


@dataclass(frozen=True)
class AuditThresholds:
    """Where a statistic becomes a flag. Defaults are the audit's sign-off policy."""

    rarely_active: float = 0.01  # active (non-zero somewhere) on fewer than this share of images
    saturated: float = 0.9  # at a Clip/HardSigmoid/Sigmoid bound more than this share of the time
    range_outlier: float = 10.0  # channel max|x| above this multiple of the layer's median max|x|
    near_zero: float = 1e-3  # filter L2 norm below this multiple of the layer's median norm
    duplicate_cosine: float = 0.99  # cosine similarity with another filter of the same layer
    duplicate_min_size: int = 8  # smaller filters (e.g. 2-weight SE convs) are alike by chance
    tiny_variance: float = 1e-6  # BatchNormalization running variance below this
    huge_scale: float = 10.0  # |BN scale| above this multiple of the layer's median |scale|


DEFAULT_THRESHOLDS = AuditThresholds()


FLAG_NAMES = ("dead", "rarely_active", "saturated", "range_outlier")  # bit i of a flag mask: FLAG_NAMES[i]


def flag_masks(stats: LayerStats, thresholds: AuditThresholds = DEFAULT_THRESHOLDS) -> dict[str, np.ndarray]:
    """Per flag (FLAG_NAMES), which channels carry it.

    dead: zero on every image. rarely_active: non-zero on some, but fewer than the threshold
    share, of images. saturated: at a bound most of the time (dead channels are reported as
    dead only). range_outlier: a quantization risk, one channel's range dwarfs the layer's.
    """
    seen = ~np.isnan(stats.mean)
    dead = seen & (stats.active_fraction == 0)
    rare = seen & (stats.active_fraction > 0) & (stats.active_fraction < thresholds.rarely_active)
    saturated = np.zeros_like(dead)
    if stats.saturation_fraction is not None:
        saturated = seen & ~dead & (np.nan_to_num(stats.saturation_fraction) > thresholds.saturated)
    peak = np.fmax(np.abs(stats.min), np.abs(stats.max))
    median = float(np.median(peak[seen])) if seen.any() else 0.0
    outlier = seen & (median > 0) & (peak > thresholds.range_outlier * median)
    return dict(zip(FLAG_NAMES, (dead, rare, saturated, outlier), strict=True))


def flag_bits(masks: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 per channel: bit i set where the channel carries FLAG_NAMES[i]."""
    bits = np.zeros(len(next(iter(masks.values()))), np.uint8)
    for i, name in enumerate(FLAG_NAMES):
        bits |= masks[name].astype(np.uint8) << i
    return bits


FLAG_LISTS = [[name for i, name in enumerate(FLAG_NAMES) if b >> i & 1] for b in range(1 << len(FLAG_NAMES))]


def channel_flags(stats: LayerStats, thresholds: AuditThresholds = DEFAULT_THRESHOLDS) -> list[list[str]]:
    """Flags per channel, in FLAG_NAMES order (see flag_masks)."""
    return [list(FLAG_LISTS[b]) for b in flag_bits(flag_masks(stats, thresholds)).tolist()]
