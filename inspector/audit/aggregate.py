"""Streaming per-layer, per-channel activation statistics that never keep the feature maps.

Each batch [N, C, ...] is folded into float64 per-channel state: count, mean and M2 (combined
with Chan et al.'s parallel update, so batches and partial audits merge exactly), min, max,
zero count, images where the channel is non-zero anywhere, values at a saturation bound,
non-finite values (excluded from every other statistic) and a log-histogram for percentiles
(see sketch.py). `to_dict`/`from_dict` are JSON-safe so an interrupted audit can resume.
A batch arrives either as full tensors or as the in-graph reductions of reductions.py; then
min, max and every count are still exact, mean and std come from per-map float32 sums merged in
float64 (mean to ~1e-6 of the channel's mean |x|, std to 6e-4 or better: see reductions.py) and
the percentiles from a strided subsample of each map (reductions.SAMPLE positions per image).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from inspector.audit import sketch
from inspector.errors import InvalidArgument

Dim = int | str | None
_ARRAYS = ("count", "mean", "m2", "min", "max", "zeros", "active", "saturated", "nonfinite")


@dataclass
class LayerStats:
    """Per-channel results for one tensor (arrays of length C; NaN where a channel saw no values)."""

    op_type: str
    shape: list[Dim]
    images: int
    mean: np.ndarray
    std: np.ndarray  # population standard deviation (ddof=0)
    min: np.ndarray
    max: np.ndarray
    zero_fraction: np.ndarray
    active_fraction: np.ndarray  # share of images where the channel is non-zero somewhere
    saturation_fraction: np.ndarray | None  # share of values at a bound; None: tensor has no bounds
    nonfinite_fraction: np.ndarray
    p1: np.ndarray  # percentiles: approximate (sketch.RELATIVE_ERROR), and on the reduced path
    p50: np.ndarray  # read from a strided subsample of each map
    p99: np.ndarray


@dataclass
class ReducedBatch:
    """One batch of one tensor as the audit model returns it (see reductions.py): per-map sums."""

    shape: list[int]  # the tensor's [N, C, ...]
    sum: np.ndarray  # float64 [N, C]: each map's sum
    m2: np.ndarray  # float64 [N, C]: each map's sum of squared deviations from its mean
    conditioned: bool  # False: some map's m2 may be off by more than the documented accuracy
    image_min: np.ndarray  # [N, C]
    image_max: np.ndarray  # [N, C]
    zeros: np.ndarray  # [N, C] exact integer counts
    saturated: np.ndarray | None  # [N, C] like zeros; None: no bounds
    sample: np.ndarray  # [N, C, K] strided subsample of each map, for the percentile sketch only
    source: str | None = None  # min, max and sample came from this tensor's (reductions.monotone_sources)

    def finite(self) -> bool:
        """False when the batch held a NaN or an infinity (or overflowed float32 sums)."""
        return bool(np.isfinite(self.sum).all() and np.isfinite(self.m2).all())


class _Channels:
    """The float64 state of one tensor: views into the aggregator's arrays over all channels
    (rows base .. base + C), so a batch of many tensors can also be folded in at once
    (ActivationAggregator._add_columns); every update is in place."""

    def __init__(self, arrays: Mapping[str, np.ndarray], hist: np.ndarray, base: int, channels: int) -> None:
        rows = slice(base, base + channels)
        for name in _ARRAYS:
            setattr(self, name, arrays[name][rows])
        self._hist, self.base = hist[rows], base
        # (source, lowest bin, highest bin): this tensor is its source clamped, so its sketch is the
        # source's with the outer bins folded in (see ActivationAggregator's `mirrors`)
        self.mirror: tuple[_Channels, int, int] | None = None

    @property
    def hist(self) -> np.ndarray:
        """The percentile sketch's [C, BINS] counts."""
        return self._hist if self.mirror is None else self._hist + sketch.clamped(self.mirror[0].hist, *self.mirror[1:])

    def unmirror(self) -> None:
        """Keep this tensor's sketch itself from now on (a batch is folded without its source's bins)."""
        if self.mirror is not None:
            self._hist[...] = self.hist
            self.mirror = None

    def add_bins(self, bins: np.ndarray) -> None:
        """Count flat indices into this tensor's [C, BINS] histogram (np.add.at, in place: ~3.5 ns a
        value in an audit, where batching them for np.bincount cost ~9 ns and as much memory again)."""
        np.add.at(self._hist.reshape(-1), bins, 1)

    def combine(self, n: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        """Chan's parallel update of (count, mean, M2)."""
        self.count[...], self.mean[...], self.m2[...] = _chan(self.count, self.mean, self.m2, n, mean, m2)

    def add(self, x: np.ndarray, bounds: tuple[float, float] | None, subsampled: bool = False) -> None:
        """Fold one [N, C, ...] batch in; `subsampled`: the sketch takes only the positions the
        audit graph would have kept (a batch redone exactly inside a reduced audit)."""
        n, c = x.shape[0], x.shape[1]
        per_image = np.moveaxis(x.reshape(n, c, -1), 1, 0)  # [C, N, M]
        self.active += np.count_nonzero((per_image != 0).any(axis=2), axis=1)
        v = per_image.reshape(c, -1).astype(np.float64)  # a fresh [C, K] copy, changed in place below
        finite = np.isfinite(v)
        everything = bool(finite.all())
        if not everything:
            self.nonfinite += np.count_nonzero(~finite, axis=1)
            v[~finite] = np.nan
        counts = np.count_nonzero(finite, axis=1)
        np.fmin(self.min, np.fmin.reduce(v, axis=1, initial=np.inf), out=self.min)
        np.fmax(self.max, np.fmax.reduce(v, axis=1, initial=-np.inf), out=self.max)
        self.zeros += np.count_nonzero(v == 0, axis=1)
        if bounds is not None:
            self.saturated += np.count_nonzero((v <= bounds[0]) | (v >= bounds[1]), axis=1)
        if subsampled:
            kept = np.moveaxis(sketch.subsample(x.reshape(n, c, -1)), 1, 0).reshape(c, -1).astype(np.float32)
            self.add_bins(sketch.bins_of(kept, np.isfinite(kept)))
        else:
            self.add_bins(sketch.bins_of(v.astype(np.float32), None if everything else finite))
        if not everything:
            v[~finite] = 0.0
        mean = v.sum(axis=1) / np.maximum(counts, 1)
        v -= mean[:, None]
        if not everything:
            v[~finite] = 0.0
        self.combine(counts, mean, np.einsum("ij,ij->i", v, v))

    def reduced_columns(self, name: str, r: ReducedBatch, bounded: bool) -> ReducedColumns | None:
        """One all-finite batch of this tensor from its per-map sums, as ActivationAggregator folds
        many tensors at once (None: empty maps, nothing to fold)."""
        images, positions = r.shape[0], int(np.prod(r.shape[2:], dtype=np.int64))
        if images * positions == 0:
            return None
        channels = r.sum.shape[1]
        bins = []
        if self.mirror is None:
            bins.append(sketch.bins_of(np.moveaxis(np.asarray(r.sample, np.float32), 1, 0).reshape(channels, -1)))
        rows = np.arange(self.base, self.base + channels, dtype=np.intp)
        return ReducedColumns(
            tensors=(name,), images=images, rows=rows, positions=np.full(channels, positions, np.int64),
            sum=r.sum, m2=r.m2, image_min=r.image_min, image_max=r.image_max, zeros=r.zeros,
            saturated=r.saturated if bounded else np.zeros((images, 0), np.int64),
            bounded=rows if bounded else np.zeros(0, np.intp), binned=(name,) if bins else (), bins=bins)

    def merge(self, other: _Channels) -> None:
        """Add another partial state of the same tensor (unmirror() first: see ActivationAggregator.merge)."""
        self.combine(other.count, other.mean, other.m2)
        np.minimum(self.min, other.min, out=self.min)
        np.maximum(self.max, other.max, out=self.max)
        for name in ("zeros", "active", "saturated", "nonfinite", "hist"):
            getattr(self, name)[...] += getattr(other, name)


@dataclass
class ReducedColumns:
    """One batch of several tensors as the audit model returns them, side by side: each column is
    one channel, at aggregator row `rows[column]`; all finite, every map non-empty."""

    tensors: tuple[str, ...]
    images: int
    rows: np.ndarray  # intp [K]
    positions: np.ndarray  # int64 [K]: values per map of each column's tensor
    sum: np.ndarray  # float64 [N, K]: each map's sum
    m2: np.ndarray  # float64 [N, K]: each map's sum of squared deviations from its mean
    image_min: np.ndarray  # [N, K]
    image_max: np.ndarray
    zeros: np.ndarray  # integer [N, K]
    saturated: np.ndarray  # integer [N, len(bounded)]
    bounded: np.ndarray  # intp: the aggregator rows that `saturated` counts
    binned: tuple[str, ...]  # the tensors whose subsample bins are given (the others mirror their source)
    bins: list[np.ndarray]  # per binned tensor, int32: each value's index into its flat [C, BINS] histogram


def _chan(count: np.ndarray, mean: np.ndarray, m2: np.ndarray, n: np.ndarray, batch_mean: np.ndarray,
          batch_m2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chan et al.'s parallel update: (count, mean, M2) of two parts merged."""
    total = count + n
    safe = np.maximum(total, 1)
    delta = batch_mean - mean
    return total, mean + delta * (n / safe), m2 + batch_m2 + delta * delta * (count * n / safe)


def _nan_where(empty: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.where(empty, np.nan, a)


def json_floats(values: np.ndarray) -> list[float | None]:
    """JSON numbers, None where not finite (tolist(): ~20x faster than numpy indexing)."""
    values = np.asarray(values, np.float64)
    if np.isfinite(values).all():
        return values.tolist()
    return [v if math.isfinite(v) else None for v in values.tolist()]


def _bound_json(b: tuple[float, float] | None) -> list[float | None] | None:
    return None if b is None else [v if math.isfinite(v) else None for v in b]


class ActivationAggregator:
    """Per-channel statistics of the named tensors, accumulated batch by batch.

    tensors: name -> (op_type, shape); shape[1] must be the (known) channel count.
    saturation_bounds: name -> (lo, hi) for tensors that saturate (see tensors.saturation_bounds).
    mirrors: name -> (source, (lo, hi)) for tensors that are another audited tensor clamped
    elementwise to [lo, hi] in float32 (Relu, Clip; reductions.monotone_sources): while batches of
    both arrive reduced, the subsample of the clamped one is its source's clamped, so its sketch is
    read from the source's (binning is monotone) instead of being counted twice.
    """

    def __init__(self, tensors: Mapping[str, tuple[str, list[Dim] | tuple[Dim, ...]]],
                 saturation_bounds: Mapping[str, tuple[float, float]] | None = None,
                 mirrors: Mapping[str, tuple[str, tuple[float, float]]] | None = None) -> None:
        self.specs = {name: (op, list(shape)) for name, (op, shape) in tensors.items()}
        bounds = dict(saturation_bounds or {})
        self.bounds = {n: (float(b[0]), float(b[1])) for n, b in bounds.items() if n in self.specs}
        self.images = 0
        for name, (_, shape) in self.specs.items():
            if len(shape) < 2 or not isinstance(shape[1], int):
                raise InvalidArgument(f"Tensor {name!r} has shape {shape}; an audit needs [N, C, ...] "
                                      "with a known channel count C.", field="layers")
        total = sum(shape[1] for _, shape in self.specs.values())
        fill = {"mean": 0.0, "m2": 0.0, "min": np.inf, "max": -np.inf}
        self.arrays = {name: np.full(total, fill[name]) if name in fill else np.zeros(total, np.int64)
                       for name in _ARRAYS}
        hist = np.zeros((total, sketch.BINS), np.int64)
        self.state: dict[str, _Channels] = {}
        base = 0
        for name, (_, shape) in self.specs.items():
            self.state[name] = _Channels(self.arrays, hist, base, shape[1])
            base += shape[1]
        for name, (source, clamp) in (mirrors or {}).items():
            if name in self.state and source in self.state and self.state[source].mirror is None:
                lo, hi = sketch.bin_index(np.asarray(clamp, np.float32)).tolist()
                self.state[name].mirror = (self.state[source], lo, hi)

    def update(self, batch_outputs: Mapping[str, np.ndarray],
               reduced: Mapping[str, ReducedBatch] | None = None, subsampled: Collection[str] = (),
               columns: ReducedColumns | None = None) -> None:
        """Fold one batch in: every audited tensor, [N, C, ...] with the same N, either as the full
        tensor in `batch_outputs` or as its in-graph reductions in `reduced` or `columns` (finite
        batches only). Full tensors named in `subsampled` feed the percentile sketch like reduced
        ones would."""
        reduced = reduced or {}
        batch = None if columns is None else columns.images
        for name, (_, shape) in self.specs.items():
            if columns is not None and name in columns.tensors:
                continue
            if name not in batch_outputs and name not in reduced:
                raise InvalidArgument(f"The batch has no values for audited tensor {name!r}.", field="layers")
            got = reduced[name].shape if name in reduced else list(np.shape(batch_outputs[name]))
            if len(got) < 2 or got[1] != shape[1] or (batch is not None and got[0] != batch):
                raise InvalidArgument(f"Tensor {name!r} came back with shape {got}; expected "
                                      f"[N, {shape[1]}, ...] with the same N as the other tensors.")
            batch = got[0]
        exact = {n for n in self.specs if n not in reduced and (columns is None or n not in columns.tensors)}
        for name, state in self.state.items():
            if state.mirror is not None and (name in exact or any(state.mirror[0] is self.state[e] for e in exact)):
                state.unmirror()
        if columns is not None:
            self._add_columns(columns)
        for name in self.specs:
            if columns is not None and name in columns.tensors:
                continue
            if name in reduced:
                one = self.state[name].reduced_columns(name, reduced[name], name in self.bounds)
                if one is not None:
                    self._add_columns(one)
            else:
                self.state[name].add(np.asarray(batch_outputs[name]), self.bounds.get(name), name in subsampled)
        self.images += batch or 0

    def _add_columns(self, batch: ReducedColumns) -> None:
        """Fold in one all-finite batch of some tensors from their per-map sums (percentiles from
        the subsample): Chan's update over the equal-sized maps of each channel."""
        n = batch.images * batch.positions
        mean = batch.sum.sum(axis=0) / n
        spread = batch.sum / batch.positions - mean
        m2 = batch.m2.sum(axis=0) + batch.positions * np.einsum("ij,ij->j", spread, spread)
        a, rows = self.arrays, batch.rows
        a["active"][rows] += np.count_nonzero((batch.image_min != 0) | (batch.image_max != 0), axis=0)
        a["min"][rows] = np.minimum(a["min"][rows], batch.image_min.min(axis=0))
        a["max"][rows] = np.maximum(a["max"][rows], batch.image_max.max(axis=0))
        a["zeros"][rows] += batch.zeros.sum(axis=0, dtype=np.int64)
        a["saturated"][batch.bounded] += batch.saturated.sum(axis=0, dtype=np.int64)
        for name, bins in zip(batch.binned, batch.bins, strict=True):
            self.state[name].add_bins(bins)
        a["count"][rows], a["mean"][rows], a["m2"][rows] = _chan(a["count"][rows], a["mean"][rows], a["m2"][rows],
                                                                 n, mean, m2)

    def merge(self, other: ActivationAggregator) -> None:
        """Add another partial aggregate of the same tensors (e.g. from another worker or a resume)."""
        if self.specs != other.specs or self.bounds != other.bounds:
            raise InvalidArgument("Partial audits cover different tensors or saturation bounds; "
                                  "only audits of the same model and layers can be merged.")
        for state in self.state.values():  # before any source takes the other's counts
            state.unmirror()
        for name, state in self.state.items():
            state.merge(other.state[name])
        self.images += other.images

    def result(self) -> dict[str, LayerStats]:
        """Per-tensor statistics so far."""
        out = {}
        for name, s in self.state.items():
            n = np.maximum(s.count, 1)
            empty = s.count == 0
            values = np.maximum(s.count + s.nonfinite, 1)
            p1, p50, p99 = sketch.percentiles(s.hist, (1.0, 50.0, 99.0), s.min, s.max)
            out[name] = LayerStats(
                op_type=self.specs[name][0], shape=self.specs[name][1], images=self.images,
                mean=_nan_where(empty, s.mean), std=_nan_where(empty, np.sqrt(s.m2 / n)),
                min=_nan_where(empty, s.min), max=_nan_where(empty, s.max),
                zero_fraction=_nan_where(empty, s.zeros / n),
                active_fraction=s.active / max(self.images, 1),
                saturation_fraction=_nan_where(empty, s.saturated / n) if name in self.bounds else None,
                nonfinite_fraction=s.nonfinite / values, p1=p1, p50=p50, p99=p99)
        return out

    def to_dict(self, arrays: bool = False) -> dict:
        """JSON-safe snapshot (exact: floats round-trip through JSON; histograms stored sparsely).
        `arrays`: the same snapshot with numpy arrays in place of lists (non-finite values as they
        are), ~10x cheaper to build, pickle and restore: partial states between processes."""
        tensors = {}
        for name, s in self.state.items():
            op, shape = self.specs[name]
            flat = s.hist.reshape(-1)
            nz = np.flatnonzero(flat)
            entry = {"op_type": op, "shape": shape, "bounds": _bound_json(self.bounds.get(name)),
                     "hist": ({"index": nz, "count": flat[nz]} if arrays
                              else {"index": nz.tolist(), "count": flat[nz].tolist()})}
            for key in _ARRAYS:
                a = getattr(s, key)
                entry[key] = a.copy() if arrays else a.tolist() if a.dtype.kind == "i" else json_floats(a)
            tensors[name] = entry
        return {"version": 1, "sketch": sketch.CONFIG, "images": self.images, "tensors": tensors}

    @classmethod
    def from_dict(cls, data: Mapping) -> ActivationAggregator:
        """Rebuild an aggregate saved by to_dict()."""
        if data.get("version") != 1 or data.get("sketch") != sketch.CONFIG:
            raise InvalidArgument("The saved partial audit was written by an incompatible version; "
                                  "start the audit again.")
        try:
            return cls._restore(data)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise InvalidArgument("The saved partial audit is incomplete or corrupt; start the audit "
                                  f"again ({type(e).__name__}: {e}).") from e

    @classmethod
    def _restore(cls, data: Mapping) -> ActivationAggregator:
        tensors = data["tensors"]
        bounds = {}
        for name, t in tensors.items():
            if t["bounds"] is not None:
                lo, hi = t["bounds"]
                bounds[name] = (-math.inf if lo is None else lo, math.inf if hi is None else hi)
        agg = cls({name: (t["op_type"], t["shape"]) for name, t in tensors.items()}, bounds)
        agg.images = int(data["images"])
        for name, t in tensors.items():
            s = agg.state[name]
            for key in _ARRAYS:
                fill = {"min": np.inf, "max": -np.inf}.get(key, np.nan)
                values = (np.asarray(t[key], getattr(s, key).dtype) if isinstance(t[key], np.ndarray)
                          else np.asarray([fill if v is None else v for v in t[key]], getattr(s, key).dtype))
                if values.shape != s.count.shape:
                    raise ValueError(f"{name}.{key} has {values.size} values for {s.count.size} channels")
                getattr(s, key)[...] = values
            s.hist.reshape(-1)[np.asarray(t["hist"]["index"], np.int64)] = t["hist"]["count"]
        return agg
