"""The result types of inspector, shared by the server package and this client.

One module, numpy only (no protobuf, no server code): `Inspector` in-process and
`InspectorClient` over gRPC return the same objects with the same field names. Each result
knows its wire form (`to_wire` / `from_wire`): header fields, a JSON-able `info` dict and
named items in groups (tensors or encoded blobs), which the gRPC edge streams as chunks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

Dim = int | str | None  # a fixed size, a symbolic name, or unknown
PNG = "image/png"
JSON = "application/json"


# ---- models ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorInfo:
    """Name, element type (numpy dtype name, e.g. "float32") and shape of one tensor."""

    name: str
    dtype: str | None
    shape: tuple[Dim, ...] | None  # None: rank unknown


@dataclass(frozen=True)
class LayerInfo:
    """One node of the graph, as the layer table shows it."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[TensorInfo, ...]
    parameter_count: int
    has_weights: bool  # holds conv/gemm weights (also through Identity/DequantizeLinear/Cast)
    weight_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    """What a caller sees about a stored model."""

    id: str  # sha256 hex of the model bytes
    name: str | None
    size_bytes: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    opsets: dict[str, int]
    producer: str
    layers: tuple[LayerInfo, ...] = ()
    preprocess: dict = field(default_factory=dict)  # the stored spec: only the fields set
    differentiable: bool | None = None
    blocking_ops: tuple[str, ...] = ()  # "OpType (node name)" for ops without a VJP rule
    created: float = 0.0
    providers: tuple[str, ...] = ()  # the execution providers the model runs on
    names: tuple[str, ...] = ()  # every name (alias) of the model; `name` is the one asked for


# ---- the wire form --------------------------------------------------------------------------
@dataclass(frozen=True)
class WireItem:
    group: str  # "output", "feature", "png", "stats", "weight", "gradient", "heatmap", ...
    name: str
    value: np.ndarray | bytes
    media_type: str = ""  # for bytes: "image/png", "application/json"


@dataclass
class Wire:
    """A result as it travels: header fields, JSON-able info, items in order."""

    model_id: str = ""
    providers: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    items: list[WireItem] = field(default_factory=list)

    def add(self, group: str, name: str, value: np.ndarray | bytes, media_type: str = "") -> None:
        if isinstance(value, bytes | bytearray) and not media_type:
            media_type = PNG
        self.items.append(WireItem(group, name, value, media_type))

    def group(self, group: str) -> dict[str, np.ndarray | bytes]:
        """All items of one group, by name."""
        return {i.name: i.value for i in self.items if i.group == group}

    def by_image(self, group: str) -> list:
        """The items of a group named "0", "1", ... in image order."""
        values = self.group(group)
        return [values[k] for k in sorted(values, key=int)]

    def nested(self, group: str) -> dict[str, dict[str, np.ndarray | bytes]]:
        """Items named "<key>/<sub>" as {key: {sub: value}} (keys may contain "/")."""
        out: dict[str, dict] = {}
        for name, value in self.group(group).items():
            key, sub = name.rsplit("/", 1)
            out.setdefault(key, {})[sub] = value
        return out


    def to_json(self) -> dict:
        """The JSON form the HTTP edge sends: tensors as dtype + shape + base64 little-endian bytes,
        blobs as base64 with their media type, in order."""
        import base64

        items = []
        for i in self.items:
            entry = {"group": i.group, "name": i.name}
            if isinstance(i.value, bytes | bytearray):
                entry.update(media_type=i.media_type or "application/octet-stream",
                             data=base64.b64encode(i.value).decode())
            else:
                arr = np.asarray(i.value)
                arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
                entry.update(dtype=arr.dtype.name, shape=list(arr.shape), data=base64.b64encode(arr.tobytes()).decode())
            items.append(entry)
        return {"model_id": self.model_id, "providers": list(self.providers), "warnings": list(self.warnings),
                "info": json_ready(self.info), "items": items}

    @classmethod
    def from_json(cls, data: dict) -> Wire:
        import base64

        wire = cls(data.get("model_id", ""), tuple(data.get("providers", ())), list(data.get("warnings", ())),
                   dict(data.get("info", {})))
        for entry in data.get("items", ()):
            raw = base64.b64decode(entry["data"])
            if "dtype" in entry:
                dtype = np.dtype(entry["dtype"]).newbyteorder("<")
                value = np.frombuffer(raw, dtype).reshape(entry["shape"]).astype(dtype.newbyteorder("="))
                wire.items.append(WireItem(entry["group"], entry["name"], value))
            else:
                wire.items.append(WireItem(entry["group"], entry["name"], raw, entry.get("media_type", "")))
        return wire


StreamedResult = Wire  # the name older client code used for a reassembled stream


@dataclass(eq=False, kw_only=True)
class Result:
    """What every result says about how it was computed."""

    model_id: str = ""
    providers: tuple[str, ...] = ()  # execution providers actually used, in order
    warnings: list[str] = field(default_factory=list)

    def _wire(self, info: dict | None = None) -> Wire:
        return Wire(self.model_id, tuple(self.providers), list(self.warnings), dict(info or {}))

    @staticmethod
    def _meta(wire: Wire) -> dict:
        return {"model_id": wire.model_id, "providers": tuple(wire.providers), "warnings": list(wire.warnings)}


class _Named(Mapping):
    """A result that reads as a dict of its main tensors (result["logits"])."""

    _main = ""

    def __getitem__(self, key: str):
        return getattr(self, self._main)[key]

    def __iter__(self) -> Iterator[str]:
        return iter(getattr(self, self._main))

    def __len__(self) -> int:
        return len(getattr(self, self._main))

    __eq__ = object.__eq__  # arrays have no truth value: compare fields, not the mapping
    __hash__ = None


# ---- results --------------------------------------------------------------------------------
@dataclass(eq=False)
class Inference(Result, _Named):
    """The model's graph outputs by name."""

    outputs: dict[str, np.ndarray]
    _main = "outputs"

    def to_wire(self) -> Wire:
        w = self._wire()
        for name, value in self.outputs.items():
            w.add("output", name, value)
        return w

    @classmethod
    def from_wire(cls, w: Wire) -> Inference:
        return cls(w.group("output"), **cls._meta(w))


@dataclass(eq=False)
class FeatureMaps(Result, _Named):
    """Intermediate tensors by name, in the forms asked for."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # raw [N, ...]
    pngs: dict[str, list[bytes]] = field(default_factory=dict)  # one channel grid per image
    stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # per channel
    names: list[str] = field(default_factory=list)  # the tensors chosen, in order
    channels: dict[str, list[list[int]]] = field(default_factory=dict)  # per image: the channels each grid shows
    _main = "tensors"

    def to_wire(self) -> Wire:
        w = self._wire({"tensors": list(self.names)})
        for name in self.names:
            if name in self.tensors:
                w.add("feature", name, self.tensors[name])
            for i, png in enumerate(self.pngs.get(name, ())):
                w.add("png", f"{name}/{i}", png, PNG)
            for i, shown in enumerate(self.channels.get(name, ())):
                w.add("channels", f"{name}/{i}", np.asarray(shown, np.int64))
            for stat, values in self.stats.get(name, {}).items():
                w.add("stats", f"{name}/{stat}", values)
        return w

    @classmethod
    def from_wire(cls, w: Wire) -> FeatureMaps:
        pngs: dict[str, list[bytes]] = {}
        for name, by_index in w.nested("png").items():
            pngs[name] = [by_index[k] for k in sorted(by_index, key=int)]
        channels = {name: [[int(c) for c in by_index[k]] for k in sorted(by_index, key=int)]
                    for name, by_index in w.nested("channels").items()}
        return cls(w.group("feature"), pngs, w.nested("stats"), list(w.info.get("tensors", [])), channels,
                   **cls._meta(w))


@dataclass(eq=False)
class Weights(Result, _Named):
    """Conv/Gemm weights by initializer name, in the forms asked for."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    pngs: dict[str, bytes] = field(default_factory=dict)  # filter grids
    histograms: dict[str, bytes] = field(default_factory=dict)
    stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # per output filter
    layers: dict[str, dict] = field(default_factory=dict)  # initializer -> {layer, op_type, role}
    _main = "tensors"

    def to_wire(self) -> Wire:
        w = self._wire({"weights": [{"initializer": k, **v} for k, v in self.layers.items()]})  # ordered
        for name in self.layers:
            if name in self.tensors:
                w.add("weight", name, self.tensors[name])
            if name in self.pngs:
                w.add("png", name, self.pngs[name], PNG)
            if name in self.histograms:
                w.add("histogram", name, self.histograms[name], PNG)
            for stat, values in self.stats.get(name, {}).items():
                w.add("stats", f"{name}/{stat}", values)
        return w

    @classmethod
    def from_wire(cls, w: Wire) -> Weights:
        layers = {e["initializer"]: {k: v for k, v in e.items() if k != "initializer"}
                  for e in w.info.get("weights", [])}
        return cls(w.group("weight"), w.group("png"), w.group("histogram"), w.nested("stats"), layers,
                   **cls._meta(w))


@dataclass(eq=False)
class Gradients(Result, _Named):
    """d(target)/d(wrt) for each wrt tensor, and what the target was."""

    gradients: dict[str, np.ndarray]
    start: str = ""  # the tensor the target lives on
    policy: str = ""
    targets: list[str] = field(default_factory=list)  # per image, e.g. "logits[281]"
    scores: list[float] = field(default_factory=list)  # the target's value per image
    wrt: list[str] = field(default_factory=list)
    _main = "gradients"

    def to_wire(self) -> Wire:
        w = self._wire({"start": self.start, "policy": self.policy, "targets": list(self.targets),
                        "scores": [float(s) for s in self.scores], "wrt": list(self.wrt)})
        for name, value in self.gradients.items():
            w.add("gradient", name, value)
        return w

    @classmethod
    def from_wire(cls, w: Wire) -> Gradients:
        i = w.info
        return cls(w.group("gradient"), i.get("start", ""), i.get("policy", ""), list(i.get("targets", [])),
                   [float(s) for s in i.get("scores", [])], list(i.get("wrt", [])), **cls._meta(w))


@dataclass(eq=False)
class Explanation(Result):
    """What `explain` returns; arrays have a leading batch axis (one entry per image)."""

    method: str
    heatmap: np.ndarray                 # [N, H, W] in [0, 1] at input size
    layer_heatmap: np.ndarray | None = None  # [N, h, w] at layer resolution (CAMs)
    attribution: np.ndarray | None = None    # input-space methods: raw signed, input's shape
    overlay_png: list[bytes] = field(default_factory=list)  # one overlay per image
    score: list[float] = field(default_factory=list)
    score_after: list[float] | None = None
    layers: list[str] = field(default_factory=list)   # the layers used
    targets: list[str] = field(default_factory=list)  # per image, e.g. "logits[281]"
    params: dict = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def layer(self) -> list[str]:
        """The layers used (the client's earlier name for `layers`)."""
        return self.layers

    @property
    def target(self) -> list[str]:
        """The per-image targets (the client's earlier name for `targets`)."""
        return self.targets

    def to_wire(self) -> Wire:
        w = self._wire({
            "method": self.method, "layers": list(self.layers), "targets": list(self.targets),
            "score": [float(s) for s in self.score],
            "score_after": None if self.score_after is None else [float(s) for s in self.score_after],
            "params": json_ready(self.params)})
        w.add("heatmap", "heatmap", np.asarray(self.heatmap, np.float32))
        if self.layer_heatmap is not None:
            w.add("layer_heatmap", "layer_heatmap", np.asarray(self.layer_heatmap, np.float32))
        if self.attribution is not None:
            w.add("attribution", "attribution", np.asarray(self.attribution, np.float32))
        for name, value in self.extras.items():
            w.add("extra", name, np.asarray(value))
        for i, png in enumerate(self.overlay_png):
            w.add("overlay", str(i), png, PNG)
        return w

    @classmethod
    def from_wire(cls, w: Wire) -> Explanation:
        i = w.info
        return cls(method=i.get("method", ""), heatmap=w.group("heatmap")["heatmap"],
                   layer_heatmap=w.group("layer_heatmap").get("layer_heatmap"),
                   attribution=w.group("attribution").get("attribution"),
                   overlay_png=w.by_image("overlay"), score=list(i.get("score", [])),
                   score_after=i.get("score_after"), layers=list(i.get("layers", [])),
                   targets=list(i.get("targets", [])), params=_whole(dict(i.get("params", {}))),
                   extras=w.group("extra"), **cls._meta(w))


@dataclass(eq=False)
class Evaluation(Result, _Named):
    """Faithfulness metrics of a heatmap: one value per image (curves [N, steps + 1])."""

    metrics: dict[str, np.ndarray]
    _main = "metrics"

    def to_wire(self) -> Wire:
        w = self._wire({"metrics": list(self.metrics)})
        for name, value in self.metrics.items():
            w.add("metric", name, np.asarray(value))
        return w

    @classmethod
    def from_wire(cls, w: Wire) -> Evaluation:
        return cls(w.group("metric"), **cls._meta(w))


@dataclass(eq=False)
class Maximization(Result):
    """Activation maximization: the images that excite the chosen units most."""

    inputs: np.ndarray          # [N, ...] final images as model input tensors (preprocessed)
    pngs: list[bytes]           # one display-space PNG per channel
    objective: np.ndarray       # [steps, N] value per step
    initial_objective: np.ndarray  # [N] on the starting noise
    final_objective: np.ndarray    # [N] on the final images
    layer: str = ""             # the tensor maximized (the logits for a logit objective)
    channels: list[int] = field(default_factory=list)
    steps: int = 0
    kind: str = ""              # the objective: channel, neuron, layer, logit, probability
    size: list[int] = field(default_factory=list)  # [H, W] of the images
    gain: list[float] = field(default_factory=list)  # final / |initial| objective per image

    @property
    def info(self) -> dict:
        """The scalar fields as a dict (their wire form)."""
        return {"layer": self.layer, "channels": list(self.channels), "steps": self.steps,
                "objective": self.kind, "size": list(self.size), "gain": list(self.gain)}

    def to_wire(self) -> Wire:
        w = self._wire(self.info)
        w.add("inputs", "inputs", np.asarray(self.inputs, np.float32))
        for i, png in enumerate(self.pngs):
            w.add("png", str(i), png, PNG)
        w.add("objective", "objective", np.asarray(self.objective, np.float32))
        w.add("objective", "initial_objective", np.asarray(self.initial_objective, np.float32))
        w.add("objective", "final_objective", np.asarray(self.final_objective, np.float32))
        return w

    @classmethod
    def from_wire(cls, w: Wire) -> Maximization:
        i, objective = w.info, w.group("objective")
        return cls(w.group("inputs")["inputs"], w.by_image("png"), objective["objective"],
                   objective["initial_objective"], objective["final_objective"],
                   layer=i.get("layer", ""), channels=[int(c) for c in i.get("channels", [])],
                   steps=int(i.get("steps", 0)), kind=i.get("objective", ""),
                   size=[int(s) for s in i.get("size", [])], gain=[float(g) for g in i.get("gain", [])],
                   **cls._meta(w))


# Rows of AuditReport.channel_stats and bits of channel_flags (the .proto documents both).
CHANNEL_FIELDS = ("mean", "std", "min", "max", "zero_fraction", "active_fraction", "saturation_fraction",
                  "nonfinite_fraction", "p1", "p50", "p99")
FLAGS = ("dead", "rarely_active", "saturated", "range_outlier")
_FLAG_LISTS = [[f for i, f in enumerate(FLAGS) if b >> i & 1] for b in range(1 << len(FLAGS))]


@dataclass(eq=False, repr=False)
class AuditReport(Result, dict):
    """Aggregated activation statistics over many images; it is the report.json dict (json.dumps
    writes it as such) with the metadata as attributes.

    With `channel_stats`/`channel_flags` (the columnar form) each layer of `report` holds a
    "columns" spec instead of its "channels" list; `expanded()` turns them into the lists.
    """

    report: dict
    images: int = 0
    channel_stats: np.ndarray | None = None  # [len(CHANNEL_FIELDS), channels of all layers]
    channel_flags: np.ndarray | None = None  # uint8 bit set per channel (FLAGS)

    def __post_init__(self) -> None:
        dict.update(self, self.report)

    def __repr__(self) -> str:
        return f"AuditReport(images={self.images}, layers={list(self.report.get('layers', {}))})"

    __hash__ = None

    def expanded(self) -> AuditReport:
        """The same report with every layer's channel list (no columns)."""
        if self.channel_stats is None:
            return self
        report = _expand_columns(self.report, self.channel_stats, self.channel_flags)
        return AuditReport(report, self.images, model_id=self.model_id, providers=self.providers,
                           warnings=self.warnings)

    def to_wire(self) -> Wire:
        import json

        w = self._wire({"images": self.images})
        if self.channel_stats is not None:
            w.add("audit", "channel_stats", self.channel_stats)
            w.add("audit", "channel_flags", self.channel_flags)
        w.add("audit", "audit", json.dumps(self.report).encode(), JSON)
        return w

    @classmethod
    def from_wire(cls, w: Wire) -> AuditReport:
        import json

        parts = w.group("audit")
        return cls(json.loads(parts["audit"]), int(w.info.get("images", 0)), parts.get("channel_stats"),
                   parts.get("channel_flags"), **cls._meta(w)).expanded()


@dataclass
class Progress:
    """A progress event of a long call (maximization, audit)."""

    step: int
    total: int
    values: tuple[float, ...] = ()
    message: str = ""
    previews: dict[str, bytes] = field(default_factory=dict)  # PNGs by image; "state": a checkpoint

    @property
    def checkpoint(self) -> bytes | None:
        """An audit's partial state (JSON), when this event carries one."""
        return self.previews.get(CHECKPOINT)

    def wire_items(self) -> list[WireItem]:
        return [WireItem("checkpoint", name, value, JSON) if name == CHECKPOINT
                else WireItem("preview", name, value, PNG) for name, value in self.previews.items()]


CHECKPOINT = "state"
PROGRESS_GROUPS = ("preview", "checkpoint")  # items that belong to the progress event before them


# ---- helpers --------------------------------------------------------------------------------
def json_ready(value, max_array: int | None = None):
    """A value as JSON has it: tuples as lists, numpy scalars and arrays as numbers and lists
    (with `max_array`, a larger array as the text "array[shape]"), other objects as their text."""
    if isinstance(value, dict):
        return {str(k): json_ready(v, max_array) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v, max_array) for v in value]
    if isinstance(value, np.ndarray):
        if max_array is not None and value.size > max_array:
            return f"array{list(value.shape)}"
        return json_ready(value.tolist(), max_array)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _whole(value):
    """JSON numbers as they were sent: a Struct carries only floats, so integral ones become ints
    (samples=2, not 2.0), as the server reads request parameters."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_whole(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    return value


def _json_numbers(values: np.ndarray) -> list[float | None]:
    """Floats as JSON has them: None where not finite."""
    if np.isfinite(values).all():
        return values.tolist()
    return [v if math.isfinite(v) else None for v in values.tolist()]


def _expand_columns(report: dict, columns: np.ndarray, flags: np.ndarray) -> dict:
    """The report.json form of a columnar report: each layer's "columns" becomes its list of
    channel objects (layers without a spec are left as they are)."""
    import copy

    report = copy.deepcopy(report)
    for entry in report.get("layers", {}).values():
        spec = entry.pop("columns", None)
        if spec is None:
            continue
        lo, hi = spec["offset"], spec["offset"] + spec["count"]
        values = [_json_numbers(columns[CHANNEL_FIELDS.index(f), lo:hi]) for f in spec["fields"]]
        flag_lists = [list(_FLAG_LISTS[b]) for b in flags[lo:hi].tolist()]
        keys = ("index", *spec["fields"], "flags")
        entry["channels"] = [dict(zip(keys, row, strict=True))
                             for row in zip(range(hi - lo), *values, flag_lists, strict=True)]
    return report


def target_from_names(names: list[str]) -> dict | None:
    """A class target ({"tensor", "index"}) recovered from an explanation's targets
    ("logits[281]"), when all images share it; None otherwise."""
    if not names or len(set(names)) != 1 or not names[0].endswith("]") or "[" not in names[0]:
        return None
    tensor, index = names[0][:-1].split("[", 1)
    try:
        return {"tensor": tensor, "index": [int(i) for i in index.split(",")]}
    except ValueError:
        return None


RESULTS = (Inference, FeatureMaps, Weights, Gradients, Explanation, Evaluation, Maximization, AuditReport)

__all__ = ["AuditReport", "Evaluation", "Explanation", "FeatureMaps", "Gradients", "Inference", "LayerInfo",
           "Maximization", "ModelInfo", "Progress", "RESULTS", "Result", "StreamedResult", "TensorInfo",
           "Weights", "Wire", "WireItem", "json_ready", "target_from_names"]
