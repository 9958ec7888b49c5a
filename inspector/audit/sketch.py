"""A signed floating-point histogram: the streaming percentile sketch of an audit.

Why this sketch: counts add, so merging partial audits is exact and order-independent
(two halves merged == one pass, bit for bit), it is deterministic (no sampling seed), it
serializes sparsely, and binning is a few integer operations on the float32 bits (HDR-histogram
style). Layout per channel: 2**MANTISSA_BITS bins per power of two (linear inside it) for
|x| in [2**MIN_EXP, 2**MAX_EXP), mirrored for negative values, plus one bin for
|x| < 2**MIN_EXP (read back as 0). Larger magnitudes land in the outermost bin.
A percentile is read as the geometric middle of the bin that holds the order statistic
floor(q/100 * (n-1)), clipped to the channel's exact min/max, so its relative error is at
most RELATIVE_ERROR (6.1 %), or 2**MIN_EXP absolute near zero.
"""

from __future__ import annotations

import numpy as np

MANTISSA_BITS = 3  # bins per octave: 2**MANTISSA_BITS, linear within the octave
MIN_EXP = -20
MAX_EXP = 20
MAGNITUDE_BINS = (MAX_EXP - MIN_EXP) << MANTISSA_BITS
BINS = 2 * MAGNITUDE_BINS + 1
ZERO_BIN = MAGNITUDE_BINS
RELATIVE_ERROR = float(np.sqrt(1 + 2.0 ** -MANTISSA_BITS) - 1)  # 6.1 %, the widest bin's half-width
CONFIG = {"kind": "signed_float32_bit_histogram", "mantissa_bits": MANTISSA_BITS,
          "min_exp": MIN_EXP, "max_exp": MAX_EXP}
_SHIFT = 23 - MANTISSA_BITS  # float32: 23 mantissa bits below the 8 exponent bits
_FIRST = (MIN_EXP + 127) << MANTISSA_BITS  # key of 2**MIN_EXP (exponent bias 127)


def _bin_table() -> np.ndarray:
    """Bin of every (sign, exponent, top mantissa bits) code of a float32: the top 1 + 8 + MANTISSA_BITS bits."""
    code = np.arange(1 << (9 + MANTISSA_BITS))
    negative, key = code >> (8 + MANTISSA_BITS), code & ((1 << (8 + MANTISSA_BITS)) - 1)
    m = np.minimum(key - _FIRST, MAGNITUDE_BINS - 1)
    index = np.where(negative == 1, ZERO_BIN - 1 - m, ZERO_BIN + 1 + m)
    return np.where(m < 0, ZERO_BIN, index).astype(np.int32)


_TABLE = _bin_table()
SAMPLE = 32  # positions per map kept for the sketch when a map is reduced in the graph (reductions.py)


def sample_step(positions: int) -> int:
    """ceil(M / SAMPLE), at least 1: the stride of the positions kept from a map of M values."""
    return max(1, -(-positions // SAMPLE))


def subsample(maps: np.ndarray) -> np.ndarray:
    """maps[N, C, M][:, :, ::sample_step(M)]: the positions the audit graph keeps for the sketch."""
    return maps[:, :, ::sample_step(maps.shape[2])]


def bin_index(values: np.ndarray) -> np.ndarray:
    """Bin of each finite value, read from the top bits of its float32 pattern through a lookup table."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return _TABLE.take((bits >> np.uint32(_SHIFT)).astype(np.intp))  # intp indices: 10x a uint32 take


def bin_values() -> np.ndarray:
    """Representative value of every bin (geometric middle of its edges; 0 for the zero bin)."""
    m = np.arange(MAGNITUDE_BINS)
    octave, step = MIN_EXP + (m >> MANTISSA_BITS), (m & ((1 << MANTISSA_BITS) - 1)) * 2.0 ** -MANTISSA_BITS
    middle = 2.0 ** octave * np.sqrt((1 + step) * (1 + step + 2.0 ** -MANTISSA_BITS))
    return np.concatenate([-middle[::-1], [0.0], middle])


def bins_of(values: np.ndarray, finite: np.ndarray | None = None) -> np.ndarray:
    """Flat int32 indices into a [C, BINS] histogram of values [C, K] (float32); `finite` masks out values."""
    flat = bin_index(values)
    flat += (np.arange(values.shape[0], dtype=np.int32) * BINS)[:, None]  # C * BINS < 2**31
    return (flat if finite is None else flat[finite]).reshape(-1)


def clamped(hist: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The [C, BINS] counts of values clamped to the bins lo..hi: what falls below lo counts in lo,
    above hi in hi (binning is monotone, so this is the histogram of the clamped values)."""
    out = np.zeros_like(hist)
    out[:, lo:hi + 1] = hist[:, lo:hi + 1]
    out[:, lo] += hist[:, :lo].sum(axis=1)
    out[:, hi] += hist[:, hi + 1:].sum(axis=1)
    return out


def percentiles(hist: np.ndarray, qs: tuple[float, ...], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[len(qs), C] percentile estimates; NaN for channels without values."""
    channels = hist.shape[0]
    cumulative = np.cumsum(hist, axis=1)
    counts = cumulative[:, -1].copy()
    # one sorted search for every channel: row r's running counts shifted by r * (largest count + 1)
    stride = int(counts.max(initial=0)) + 1
    shift = np.arange(channels, dtype=np.int64) * stride
    cumulative += shift[:, None]
    reps = bin_values()
    out = np.full((len(qs), channels), np.nan)
    for i, q in enumerate(qs):
        rank = np.floor(q / 100.0 * (counts - 1)).astype(np.int64)
        found = np.searchsorted(cumulative.reshape(-1), rank + shift, side="right") - np.arange(channels) * BINS
        value = np.clip(reps[np.minimum(found, BINS - 1)], lo, hi)
        out[i] = np.where(counts > 0, value, np.nan)
    return out
