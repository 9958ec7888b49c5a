"""One audit of one model: feed batches, snapshot and resume, then build the report dict.

`AuditRun` is plain numpy over the tensors a forward pass returns, so the core can drive it
from any ModelAccess (see `audit_model`) and save `to_dict()` between batches to resume later.
Where the access runs model variants (OrtModelAccess.forward_variant), batches go through the
audit model of reductions.py instead: per-channel sums and counts leave onnxruntime, not the maps.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import onnx

from inspector.audit.aggregate import (
    ActivationAggregator,
    LayerStats,
    ReducedBatch,
    ReducedColumns,
    json_floats,
)
from inspector.audit.behaviour import PredictionTally
from inspector.audit.flags import (
    DEFAULT_THRESHOLDS,
    FLAG_LISTS,
    FLAG_NAMES,
    AuditThresholds,
    flag_bits,
    flag_masks,
)
from inspector.audit.reductions import (
    clamp_of,
    monotone_sources,
    output_name,
    read_columns,
    read_reduced,
    reduced_outputs,
    reducible,
    with_reductions,
)
from inspector.audit.tensors import (
    check_tensor_names,
    default_audit_tensors,
    saturation_bounds,
    tensor_op_types,
)
from inspector.audit.weights import (
    batchnorm_health,
    batchnorm_params,
    filter_health,
    weight_tensors,
)
from inspector.errors import FailedPrecondition, InvalidArgument
from inspector.model_access import ModelAccess

CHANNEL_FIELDS = ("mean", "std", "min", "max", "zero_fraction", "active_fraction",
                   "saturation_fraction", "nonfinite_fraction", "p1", "p50", "p99")


def _number(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _is_class_scores(shape: tuple[int, ...]) -> bool:
    """[N, K] or [N, K, 1, ...] with K >= 2: something argmax can read as a class."""
    return len(shape) >= 2 and shape[1] >= 2 and all(d == 1 for d in shape[2:])


def _layer_columns(stats: LayerStats, bounds: tuple[float, float] | None,
                   thresholds: AuditThresholds) -> tuple[dict, list[str], np.ndarray, np.ndarray]:
    """One tensor's report entry without its channels, the fields its channels carry, their
    float64 [len(CHANNEL_FIELDS), C] values (rows of absent fields NaN) and uint8 flag bits."""
    masks = flag_masks(stats, thresholds)
    fields = [f for f in CHANNEL_FIELDS if getattr(stats, f) is not None]
    columns = np.full((len(CHANNEL_FIELDS), len(stats.mean)), np.nan)
    for i, f in enumerate(CHANNEL_FIELDS):
        if f in fields:
            columns[i] = getattr(stats, f)
    head = {"op_type": stats.op_type, "shape": stats.shape,
            "saturation_bounds": None if bounds is None else [_number(b) for b in bounds],
            "flag_counts": {f: int(np.count_nonzero(masks[f])) for f in FLAG_NAMES}}
    return head, fields, columns, flag_bits(masks)


def channel_objects(fields: Sequence[str], columns: np.ndarray, bits: np.ndarray) -> list[dict]:
    """report.json's per-channel objects from columns ([len(CHANNEL_FIELDS), C]) and flag bits."""
    values = [json_floats(columns[CHANNEL_FIELDS.index(f)]) for f in fields]
    keys = ("index", *fields, "flags")
    flags = [list(FLAG_LISTS[b]) for b in bits.tolist()]
    return [dict(zip(keys, row, strict=True)) for row in zip(range(len(flags)), *values, flags, strict=True)]


def layer_report(stats: LayerStats, bounds: tuple[float, float] | None,
                 thresholds: AuditThresholds) -> dict:
    """One tensor's entry of report.json: per-channel statistics and flags."""
    head, fields, columns, bits = _layer_columns(stats, bounds, thresholds)
    return {**head, "channels": channel_objects(fields, columns, bits)}


class AuditRun:
    """Accumulates one model's audit; `tensors` defaults to default_audit_tensors(model)."""

    def __init__(self, model: onnx.ModelProto, tensors: Sequence[str] | None = None,
                 thresholds: AuditThresholds = DEFAULT_THRESHOLDS, name: str | None = None,
                 memo: Callable[[tuple, Callable[[], Any]], Any] | None = None) -> None:
        """`memo(key, compute)` (e.g. OrtModelAccess.memo) keeps what depends on the model alone
        across audits: shape inference and the filters' Gram matrices cost ~1 s on a ResNet-18."""
        self.model, self.thresholds = model, thresholds
        self._memo = memo or (lambda key, compute: compute())
        self.name = name or model.graph.name
        self.explicit = bool(tensors)
        self.tensors = list(tensors) if tensors else default_audit_tensors(model)
        self.skipped: dict[str, list[int]] = {}  # default tensors that are not [N, C, ...] maps
        if not self.tensors:
            raise InvalidArgument("The model has no Conv, Relu, Clip, Add or Sigmoid outputs to audit; "
                                  "name the tensors to audit explicitly.", field="layers")
        check_tensor_names(model, self.tensors)
        self.scores = model.graph.output[0].name
        self.bounds = saturation_bounds(model)
        self.aggregator: ActivationAggregator | None = None
        self.tally = PredictionTally()
        self.classifier: bool | None = None
        self._graph_reductions: tuple[tuple[str, ...], tuple[tuple[str, ...], Callable]] | None = None
        # tensors whose maps need centred sums (reductions.py); kept with the model across audits
        self.centered: set[str] = self._memo(("audit-centered",), set)
        self.sources: dict[str, str] = {}  # Relu/Clip outputs read partly from their input (reductions.py)
        self._last_read: tuple[object, dict[str, ReducedBatch]] = (None, {})
        self._last_columns: tuple[object, ReducedColumns | None] = (None, None)
        self._layouts: dict = {}  # read_columns' cache

    def update(self, outputs: Mapping[str, np.ndarray], labels: np.ndarray | None = None,
               batch_size: int | None = None) -> None:
        """Fold in one batch: `outputs` holds every audited tensor and the model's first output.

        On the first batch, default tensors that are not [batch_size, C, ...] (e.g. anchor grids of a
        detector head) are dropped and listed under "skipped"; batch_size defaults to the output's N.
        """
        self._fold(outputs, {}, labels, batch_size)

    def graph_reductions(self) -> tuple[tuple[str, ...], Callable[[onnx.ModelProto], onnx.ModelProto]]:
        """(outputs to fetch, a function building the audit model that returns them from the original).

        The audit model reduces each tensor it can inside the graph (reductions.py) and returns the
        others whole; feed its outputs to `update_reduced`. The answer changes only when a tensor
        turns out to need centred sums (then one new audit model is built); tensors skipped on the
        first batch are still computed, and ignored.
        """
        centered = tuple(t for t in self.tensors if t in self.centered)
        if self._graph_reductions is None or self._graph_reductions[0] != centered:
            reduce = list(self._memo(("audit-reducible", tuple(self.tensors)),
                                     lambda: reducible(self.model, self.tensors)))
            self.sources = {t: s for t, s in monotone_sources(self.model, reduce, self.bounds).items()
                            if t not in centered}
            derived = tuple(self.sources)
            raw = [t for t in self.tensors if t not in reduce]
            names = tuple(dict.fromkeys([self.scores, *(
                o for t in reduce for o in reduced_outputs(t, t in self.bounds, t in centered, t in derived)), *raw]))
            bounds = self.bounds  # not self: the run would hold itself through the lambda
            self._graph_reductions = centered, (
                names, lambda model: with_reductions(model, reduce, bounds, raw, centered, derived))
        return self._graph_reductions[1]

    def update_reduced(self, values: Mapping[str, np.ndarray], labels: np.ndarray | None = None,
                       batch_size: int | None = None,
                       fetch_raw: Callable[[list[str]], Mapping[str, np.ndarray]] | None = None) -> None:
        """Fold in one batch from a run of the audit model (see graph_reductions).

        A tensor whose batch held NaN or infinity, or whose float32 sums cannot give a map's spread
        accurately even centred (see `recentre`), is folded in exactly from its full values, which
        `fetch_raw(names)` supplies (a plain forward pass of the same batch exposing those tensors).
        """
        columns = self._columns(values)
        if columns is None:
            self._fold(values, self._read(values), labels, batch_size, fetch_raw)
            return
        self._check_labels(labels)
        self.aggregator.update(values, columns=columns)
        if self.classifier:
            self.tally.update(values[self.scores], labels)

    def _columns(self, values: Mapping[str, np.ndarray]) -> ReducedColumns | None:
        """The reduced tensors of one audit-model run side by side, when they can be folded at once
        (after the first batch; all finite and well conditioned: see read_columns)."""
        if self._last_columns[0] is not values:
            columns = None
            rows = {t: (self.aggregator.state[t].base, len(self.aggregator.state[t].count))
                    for t in self.tensors if output_name(t, "sum") in values} if self.aggregator else {}
            if rows:
                sources = {t: (s, clamp_of(t, self.bounds)) for t, s in self.sources.items()}
                mirrored = [t for t, state in self.aggregator.state.items() if state.mirror is not None]
                columns = read_columns(values, rows, sources, self.aggregator.bounds, self._layouts, mirrored)
            self._last_columns = values, columns
        return self._last_columns[1]

    def _read(self, values: Mapping[str, np.ndarray]) -> dict[str, ReducedBatch]:
        """Every reduced tensor of one audit-model run (remembered for the run's second reader)."""
        if self._last_read[0] is not values:
            sources = {t: (s, clamp_of(t, self.bounds)) for t, s in self.sources.items()}
            self._last_read = values, {t: read_reduced(values, t, sources.get(t)) for t in self.tensors
                                       if output_name(t, "sum") in values}
        return self._last_read[1]

    def recentre(self, values: Mapping[str, np.ndarray]) -> bool:
        """True when some tensor's float32 sums in this run of the audit model cannot give its maps'
        spread (reductions.CANCELLATION): it is centred from now on, and the caller should run the
        batch again through the new audit model (graph_reductions)."""
        if self._columns(values) is not None:  # every tensor's sums are well conditioned
            return False
        uncertain = [t for t, r in self._read(values).items()
                     if t not in self.centered and r.finite() and not r.conditioned]
        self.centered.update(uncertain)
        return bool(uncertain)

    def _fold(self, outputs: Mapping[str, np.ndarray], reduced: dict[str, ReducedBatch],
              labels: np.ndarray | None, batch_size: int | None,
              fetch_raw: Callable[[list[str]], Mapping[str, np.ndarray]] | None = None) -> None:
        shapes = {t: (reduced[t].shape if t in reduced else list(np.shape(outputs[t])))
                  for t in self.tensors if t in reduced or t in outputs}
        if self.aggregator is None:
            self._start(shapes, outputs, batch_size)
        self._check_labels(labels)
        reduced = {t: r for t, r in reduced.items() if t in self.tensors}
        nonfinite = [t for t, r in reduced.items() if not r.finite()]
        nonfinite += [t for t, r in reduced.items() if r.source in nonfinite and t not in nonfinite]
        uncertain = [t for t, r in reduced.items() if t not in nonfinite and not r.conditioned]
        redone = [*nonfinite, *uncertain]
        if redone:
            if fetch_raw is None:
                problem = (f"Tensor {nonfinite[0]!r} held NaN or infinity" if nonfinite else
                           f"Tensor {uncertain[0]!r} has a spread too small for its float32 sums")
                raise FailedPrecondition(f"{problem} and no exact pass was offered to count it.")
            outputs = {**outputs, **fetch_raw(redone)}
            reduced = {t: r for t, r in reduced.items() if t not in redone}
        self.aggregator.update(outputs, reduced, subsampled=redone)
        if self.classifier:
            self.tally.update(outputs[self.scores], labels)

    def _check_labels(self, labels: np.ndarray | None) -> None:
        if labels is not None and not self.classifier:
            raise InvalidArgument(f"Labels were given, but the model output {self.scores!r} is not "
                                  "[N, classes]; audit without labels.", field="labels")

    def _start(self, shapes: Mapping[str, list[int]], outputs: Mapping[str, np.ndarray],
               batch_size: int | None) -> None:
        """First batch: keep the per-image maps among default tensors, then create the aggregator."""
        missing = [n for n in self.tensors if n not in shapes] + [n for n in [self.scores] if n not in outputs]
        if missing:
            raise InvalidArgument(f"The forward pass did not return {missing[0]!r}.", field="layers")
        size = batch_size if batch_size is not None else np.shape(outputs[self.scores])[0]
        if not self.explicit:
            maps = [t for t in self.tensors if len(shapes[t]) >= 2 and shapes[t][0] == size]
            self.skipped.update({t: list(shapes[t]) for t in self.tensors if t not in maps})
            if not maps:
                raise InvalidArgument("None of the model's Conv/Relu/Clip/Add/Sigmoid outputs is a "
                                      "per-image [N, C, ...] map; name the tensors to audit.", field="layers")
            self.tensors = maps
        ops = tensor_op_types(self.model)
        mirrors = {t: (s, clamp_of(t, self.bounds)) for t, s in monotone_sources(
            self.model, self.tensors, self.bounds).items()}
        self.aggregator = ActivationAggregator(
            {t: (ops[t], ["N", *shapes[t][1:]]) for t in self.tensors}, self.bounds, mirrors)
        self.classifier = _is_class_scores(np.shape(outputs[self.scores]))

    def result(self) -> dict:
        """The audit as report.json holds it (see report.py for the contract)."""
        stats = self.aggregator.result() if self.aggregator else {}
        return self._report({n: layer_report(s, self.bounds.get(n), self.thresholds) for n, s in stats.items()})

    def result_columns(self) -> tuple[dict, np.ndarray, np.ndarray]:
        """result() with the per-channel statistics as arrays (the AuditStats `columnar` form):
        each layer has "columns": {"fields", "offset", "count"} instead of "channels"; channel i of a
        layer is column offset + i of the float64 [len(CHANNEL_FIELDS), total] array (NaN: null)
        and entry offset + i of the uint8 flag bits (bit k: FLAG_NAMES[k]). For serializing at once:
        the report's "weights" and "batchnorm" are shared with later reports, not copies."""
        stats = self.aggregator.result() if self.aggregator else {}
        layers, columns, bits, offset = {}, [np.zeros((len(CHANNEL_FIELDS), 0))], [np.zeros(0, np.uint8)], 0
        for name, s in stats.items():
            head, fields, values, flags = _layer_columns(s, self.bounds.get(name), self.thresholds)
            layers[name] = {**head, "columns": {"fields": fields, "offset": offset, "count": len(flags)}}
            columns.append(values)
            bits.append(flags)
            offset += len(flags)
        return self._report(layers, shared=True), np.concatenate(columns, axis=1), np.concatenate(bits)

    def _weight_health(self) -> tuple[str, dict, dict]:
        """(JSON text of the weights and BatchNormalization reports, their flag counts): they depend
        on the model alone, and computing them costs ~1 s on a ResNet-18."""
        def compute():
            weights = filter_health(weight_tensors(self.model), self.thresholds)
            bn = batchnorm_health(batchnorm_params(self.model), self.thresholds)
            return (json.dumps((weights, bn)),
                    {f: sum(f in c["flags"] for w in weights.values() for c in w["filters"])
                     for f in ("near_zero", "duplicate")},
                    {f: sum(f in c["flags"] for b in bn.values() for c in b["channels"])
                     for f in ("tiny_variance", "huge_scale")})
        return self._memo(("audit-weights", self.thresholds), compute)

    def _report(self, layers: dict, shared: bool = False) -> dict:
        """The report around `layers`; `shared`: its "weights" and "batchnorm" are the memo's own
        objects (no copy: for a report serialized at once), else fresh copies."""
        text, filters, bn_counts = self._weight_health()
        if shared:
            weights, bn = self._memo(("audit-weights-objects", self.thresholds), lambda: json.loads(text))
        else:
            weights, bn = json.loads(text)  # a fresh copy: 4x faster than deepcopy
        summary = {
            "flagged_channels": {f: sum(layer["flag_counts"][f] for layer in layers.values()) for f in FLAG_NAMES},
            "flagged_filters": dict(filters), "flagged_batchnorm_channels": dict(bn_counts)}
        return {"model": self.name, "images": self.aggregator.images if self.aggregator else 0,
                "thresholds": asdict(self.thresholds), "summary": summary, "layers": layers,
                "weights": weights, "batchnorm": bn, "skipped_tensors": self.skipped,
                "behaviour": self.tally.result() if self.classifier else None}

    def merge(self, other: AuditRun) -> None:
        """Add another partial audit of the same model and tensors (e.g. another worker's shard, or a
        `from_dict` of one): counts, zeros and sketch bins add, min/max combine, mean and M2 by Chan's
        update, prediction tallies add. So counts, min, max and percentiles equal one pass over both
        parts exactly, means and spreads up to float64 rounding; a fixed merge order gives a fixed
        result. `other` is left as it was."""
        if other.aggregator is None:  # saw no batch: nothing to add
            return
        if other.classifier is not None and self.classifier is not None and other.classifier != self.classifier:
            raise InvalidArgument("Partial audits disagree on whether the model output is class scores; "
                                  "only audits of the same model can be merged.")
        if self.aggregator is None:
            if self.explicit and list(other.tensors) != list(self.tensors):
                raise InvalidArgument("Partial audits cover different tensors; only audits of the same "
                                      "model and layers can be merged.", field="layers")
            self.tensors, self.explicit = list(other.tensors), True
            self.aggregator = ActivationAggregator.from_dict(other.aggregator.to_dict())  # a copy
            self.classifier = other.classifier
        else:
            if list(other.tensors) != list(self.tensors):
                raise InvalidArgument("Partial audits cover different tensors; only audits of the same "
                                      "model and layers can be merged.", field="layers")
            self.aggregator.merge(other.aggregator)
        self.skipped.update(other.skipped)
        self.centered.update(t for t in other.centered if t in self.tensors)
        self.tally.merge(other.tally)

    def to_dict(self, arrays: bool = False) -> dict:
        """JSON-safe partial state; `from_dict(model, state)` resumes the audit where it stopped.
        `arrays`: numpy arrays in place of lists (see ActivationAggregator.to_dict)."""
        return {"version": 1, "tensors": self.tensors, "skipped": self.skipped, "classifier": self.classifier,
                "centered": sorted(self.centered & set(self.tensors)),
                "aggregate": self.aggregator.to_dict(arrays) if self.aggregator else None,
                "predictions": self.tally.to_dict()}

    @classmethod
    def from_dict(cls, model: onnx.ModelProto, state: Mapping, thresholds: AuditThresholds = DEFAULT_THRESHOLDS,
                  name: str | None = None, memo: Callable | None = None) -> AuditRun:
        run = cls(model, state["tensors"], thresholds, name, memo)
        run.classifier, run.skipped = state["classifier"], dict(state["skipped"])
        run.centered.update(state.get("centered", ()))
        if state["aggregate"] is not None:
            run.aggregator = ActivationAggregator.from_dict(state["aggregate"])
        run.tally = PredictionTally.from_dict(state["predictions"])
        return run


def audit_model(access: ModelAccess, batches: Iterable[np.ndarray | tuple[np.ndarray, np.ndarray | None]],
                layers: Sequence[str] | None = None, thresholds: AuditThresholds = DEFAULT_THRESHOLDS,
                name: str | None = None, run: AuditRun | None = None) -> dict:
    """Run the model over `batches` (preprocessed inputs, optionally with integer labels) and audit it.

    Pass `run` (e.g. AuditRun.from_dict of a saved state) to continue an interrupted audit.
    """
    run = run or AuditRun(access.graph, layers, thresholds, name, getattr(access, "memo", None))
    for batch in batches:
        access.check_cancelled()
        x, labels = batch if isinstance(batch, tuple) else (batch, None)
        fold_batch(access, run, x, labels)
    return run.result()


def fold_batch(access: ModelAccess, run: AuditRun, x: np.ndarray, labels: np.ndarray | None = None) -> None:
    """One batch into `run`: through the audit model where `access` runs variants (OrtModelAccess),
    else by exposing the full tensors. (Folding on a second thread while the model runs the next
    batch was measured slower on 2 cores: the fold competes with onnxruntime's own threads.)"""
    if not hasattr(access, "forward_variant"):
        run.update(access.forward(x, fetch=run.tensors), labels, batch_size=len(x))
        return
    while True:  # at most twice: a tensor is centred once
        names, build = run.graph_reductions()
        values = access.forward_variant(("audit", names), build, x, names)
        if not run.recentre(values):
            break
    run.update_reduced(values, labels, batch_size=len(x), fetch_raw=lambda t: access.forward(x, fetch=t))
