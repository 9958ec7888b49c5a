"""A signed log-histogram: the streaming percentile sketch of an audit.

Why this sketch: counts add, so merging partial audits is exact and order-independent
(two halves merged == one pass, bit for bit), it is deterministic (no sampling seed) and it
serializes sparsely. Layout per channel: BINS_PER_OCTAVE bins per power of two for
|x| in [2**MIN_EXP, 2**MAX_EXP), mirrored for negative values, plus one bin for
|x| < 2**MIN_EXP (read back as 0). Larger magnitudes land in the outermost bin.
A percentile is read as the geometric middle of the bin that holds the order statistic
floor(q/100 * (n-1)), clipped to the channel's exact min/max, so its relative error is
at most 2**(1 / (2 * BINS_PER_OCTAVE)) - 1 (4.4 %), or 2**MIN_EXP absolute near zero.
"""

from __future__ import annotations

import numpy as np

BINS_PER_OCTAVE = 8
MIN_EXP = -20
MAX_EXP = 20
MAGNITUDE_BINS = (MAX_EXP - MIN_EXP) * BINS_PER_OCTAVE
BINS = 2 * MAGNITUDE_BINS + 1
ZERO_BIN = MAGNITUDE_BINS
RELATIVE_ERROR = 2.0 ** (1.0 / (2 * BINS_PER_OCTAVE)) - 1.0
CONFIG = {"kind": "signed_log2_histogram", "bins_per_octave": BINS_PER_OCTAVE,
          "min_exp": MIN_EXP, "max_exp": MAX_EXP}


def bin_index(values: np.ndarray) -> np.ndarray:
    """Bin of each (finite) value; same shape, int64."""
    magnitude = np.abs(values)
    with np.errstate(divide="ignore"):
        octaves = np.log2(np.where(magnitude > 0, magnitude, 1.0))
    m = np.clip(np.floor((octaves - MIN_EXP) * BINS_PER_OCTAVE), 0, MAGNITUDE_BINS - 1).astype(np.int64)
    index = np.where(values > 0, ZERO_BIN + 1 + m, ZERO_BIN - 1 - m)
    return np.where(magnitude < 2.0 ** MIN_EXP, ZERO_BIN, index)


def bin_values() -> np.ndarray:
    """Representative value of every bin (geometric middle; 0 for the zero bin)."""
    m = np.arange(MAGNITUDE_BINS)
    middle = 2.0 ** (MIN_EXP + (m + 0.5) / BINS_PER_OCTAVE)
    return np.concatenate([-middle[::-1], [0.0], middle])


def add_counts(hist: np.ndarray, channels: np.ndarray, values: np.ndarray) -> None:
    """Add finite `values` (with their channel indices, both 1-D) into hist [C, BINS] in place."""
    flat = channels * BINS + bin_index(values)
    hist += np.bincount(flat, minlength=hist.size).reshape(hist.shape)


def percentiles(hist: np.ndarray, qs: tuple[float, ...], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[len(qs), C] percentile estimates; NaN for channels without values."""
    counts = hist.sum(axis=1)
    cumulative = np.cumsum(hist, axis=1)
    reps = bin_values()
    out = np.full((len(qs), hist.shape[0]), np.nan)
    for i, q in enumerate(qs):
        rank = np.floor(q / 100.0 * (counts - 1))
        found = np.argmax(cumulative > rank[:, None], axis=1)
        value = np.clip(reps[found], lo, hi)
        out[i] = np.where(counts > 0, value, np.nan)
    return out
