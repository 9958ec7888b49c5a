"""The Open Inference Protocol (KServe v2, as Triton serves it) over the inspector core, with no
wire format: the gRPC servicer (servicer.py) and the REST router (rest.py) only translate.

One `Oip` per core (`Oip.of(core)`), so both edges share readiness and statistics.

- Models are the store's, by name, id or id prefix; each has the one version "1" (a request
  may leave the version empty or give "1").
- Readiness: a stored model is READY until RepositoryModelUnload marks it UNAVAILABLE (its
  sessions are dropped, the store keeps it, the index still lists it); RepositoryModelLoad makes
  it READY again. A model that is not stored yet is loaded from a model root: `<root>/<name>.onnx`,
  `<root>/<name>/model.onnx` or `<root>/<name>/<version>/model.onnx` (Triton's repository
  layout), or from the bytes of a `file:<path>` parameter (Triton's override). The unloaded set
  lives in memory: a restarted server serves every stored model. Unload with the parameter
  `delete: true` also removes the model from the store.
- The inspector's extension: a requested output may name any tensor or node of the model (as
  the layer table shows them); that tensor is exposed for the call (`core.feature_maps`).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inspector import errors
from inspector.core import Inspector

VERSION = "1"
PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("model_repository", "statistics", "binary_tensor_data", "inspector_intermediate_outputs")


class Unavailable(errors.InspectorError):
    """The model is stored but unloaded (RepositoryModelUnload)."""

    code = "UNAVAILABLE"


def _bf16():
    import ml_dtypes  # shipped with onnx

    return np.dtype(ml_dtypes.bfloat16)


# datatype -> numpy dtype name ("bfloat16": ml_dtypes' type)
DATATYPES = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
             "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16",
             "FP32": "float32", "FP64": "float64", "BF16": "bfloat16", "BYTES": "object"}
FROM_NUMPY = {v: k for k, v in DATATYPES.items()} | {"bytes": "BYTES", "str": "BYTES"}


def numpy_dtype(datatype: str, what: str, field: str) -> np.dtype:
    if datatype not in DATATYPES:
        raise errors.InvalidArgument(f"{what}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}",
                                     field=field)
    name = DATATYPES[datatype]
    return _bf16() if name == "bfloat16" else np.dtype(name)


def datatype_of(dtype_name: str | None) -> str:
    """The protocol's datatype of a numpy dtype name ("float32" -> "FP32"); "" when it has none."""
    if dtype_name is None:
        return ""
    if dtype_name.startswith(("<U", "|S", "str", "bytes", "object")) or dtype_name in ("O",):
        return "BYTES"
    return FROM_NUMPY.get(dtype_name, "")


@dataclass
class TensorIn:
    """An input as it arrived: datatype, shape and the decoded array (shape checked)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


def from_raw(name: str, datatype: str, shape: Sequence[int], raw: bytes, field: str) -> TensorIn:
    """An input sent as raw little-endian row-major bytes (BYTES: 4-byte length prefixes)."""
    what = f"input '{name}'"
    dtype = numpy_dtype(datatype, what, field)
    shape = _shape(shape, what, field)
    count = int(np.prod(shape, dtype=np.int64))
    if datatype == "BYTES":
        items = decode_bytes(raw, what, field)
        if len(items) != count:
            raise errors.InvalidArgument(f"{what}: shape {list(shape)} needs {count} BYTES elements, got "
                                         f"{len(items)}", field=field)
        return TensorIn(name, datatype, shape, np.array(items, dtype=object).reshape(shape))
    want = count * dtype.itemsize
    if len(raw) != want:
        raise errors.InvalidArgument(f"{what}: datatype {datatype} and shape {list(shape)} need {want} bytes "
                                     f"of raw contents, got {len(raw)}", field=field)
    return TensorIn(name, datatype, shape, np.frombuffer(raw, dtype.newbyteorder("<") if dtype.itemsize > 1
                                                          and datatype != "BF16" else dtype).reshape(shape))


def from_values(name: str, datatype: str, shape: Sequence[int], values, field: str) -> TensorIn:
    """An input sent as typed values (a flat or nested list, as JSON or typed proto contents)."""
    what = f"input '{name}'"
    dtype = numpy_dtype(datatype, what, field)
    shape = _shape(shape, what, field)
    count = int(np.prod(shape, dtype=np.int64))
    if datatype == "BYTES":
        flat = [v.encode() if isinstance(v, str) else bytes(v) for v in _flatten(values)]
        arr = np.array(flat, dtype=object)
    else:
        try:
            arr = np.asarray(values, dtype=np.float32 if datatype == "BF16" else dtype).ravel()
        except (TypeError, ValueError) as exc:
            raise errors.InvalidArgument(f"{what}: the data are not {datatype} values ({exc})", field=field) from None
        if datatype == "BF16":
            arr = arr.astype(dtype)
    if arr.size != count:
        raise errors.InvalidArgument(f"{what}: shape {list(shape)} needs {count} values, got {arr.size}",
                                     field=field)
    return TensorIn(name, datatype, shape, arr.reshape(shape))


def to_raw(arr: np.ndarray) -> bytes:
    """An output's raw contents: little-endian row-major bytes (BYTES: length-prefixed)."""
    if arr.dtype == object or arr.dtype.kind in "US":
        return encode_bytes(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr).tobytes()


def decode_bytes(raw: bytes, what: str, field: str) -> list[bytes]:
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise errors.InvalidArgument(f"{what}: BYTES raw contents end inside a length prefix", field=field)
        n = int.from_bytes(raw[i:i + 4], "little")
        if i + 4 + n > len(raw):
            raise errors.InvalidArgument(f"{what}: a BYTES element runs past the raw contents", field=field)
        out.append(bytes(raw[i + 4:i + 4 + n]))
        i += 4 + n
    return out


def encode_bytes(arr: np.ndarray) -> bytes:
    parts = []
    for v in np.asarray(arr).ravel():
        b = v.encode() if isinstance(v, str) else bytes(v)
        parts += [len(b).to_bytes(4, "little"), b]
    return b"".join(parts)


def _flatten(values) -> Iterable:
    if isinstance(values, list | tuple):
        for v in values:
            yield from _flatten(v)
    else:
        yield values


def _shape(shape: Sequence[int], what: str, field: str) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise errors.InvalidArgument(f"{what}: shape {list(shape)} has a negative dimension", field=field)
    return shape


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns


@dataclass
class ModelStats:
    """Triton's per-model counters: requests (success/fail), executions, inferences (batch items),
    and cumulative nanoseconds of decoding (compute_input), the model run (compute_infer) and
    encoding (compute_output)."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference: int = 0  # ms since the epoch
    batches: dict[int, tuple[Duration, Duration, Duration]] = field(default_factory=dict)


@dataclass
class Outcome:
    """One ModelInfer's answer: outputs in order, each (name, datatype, array)."""

    model_name: str
    model_version: str
    outputs: list[tuple[str, str, np.ndarray]]
    timings: dict[str, int] = field(default_factory=dict)


@dataclass
class Call:
    """A ModelInfer call in flight: the edges time decoding and encoding and report it here."""

    oip: Oip
    name: str
    version: str
    started: int = field(default_factory=time.perf_counter_ns)
    input_ns: int = 0
    output_ns: int = 0
    infer_ns: int = 0
    batch: int = 0
    model_id: str | None = None

    @contextlib.contextmanager
    def decoding(self):
        t = time.perf_counter_ns()
        yield
        self.input_ns += time.perf_counter_ns() - t

    @contextlib.contextmanager
    def encoding(self):
        t = time.perf_counter_ns()
        yield
        self.output_ns += time.perf_counter_ns() - t

    def done(self, ok: bool) -> None:
        self.oip._record(self, ok, time.perf_counter_ns() - self.started)


class Oip:
    """The protocol's operations over one core."""

    _registry: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()

    def __init__(self, core: Inspector) -> None:
        self.core = core
        self._unloaded: set[str] = set()
        self._stats: dict[str, ModelStats] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, core: Inspector) -> Oip:
        """The one Oip of this core (the gRPC and the HTTP edge share it)."""
        with cls._registry_lock:
            found = cls._registry.get(core)
            if found is None:
                found = cls._registry[core] = cls(core)
            return found

    # ---- health and metadata -----------------------------------------------------------
    def server_metadata(self) -> dict:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("inspector")
        except PackageNotFoundError:
            v = "0"
        return {"name": "inspector", "version": v, "extensions": list(EXTENSIONS)}

    def _stored(self, name: str, version: str = ""):
        if not name:
            raise errors.InvalidArgument("the model name is empty", field="name")
        if version not in ("", VERSION):
            self.core.store.get(name)  # NOT_FOUND for an unknown model first
            raise errors.NotFound(f"model '{name}' has no version '{version}'; its only version is "
                                  f"'{VERSION}'", field="version")
        return self.core.store.get(name)

    def model_ready(self, name: str, version: str = "") -> bool:
        """Whether the model is stored and not unloaded (an unknown model is not ready)."""
        try:
            stored = self._stored(name, version)
        except errors.NotFound:
            return False
        return stored.id not in self._unloaded

    def _ready(self, name: str, version: str = ""):
        stored = self._stored(name, version)
        if stored.id in self._unloaded:
            raise Unavailable(f"model '{name}' is unloaded; load it again with RepositoryModelLoad "
                              f"(POST /v2/repository/models/{name}/load)", field="name")
        return stored

    def model_metadata(self, name: str, version: str = "") -> dict:
        self._ready(name, version)
        loaded = self.core.open(name)
        d = loaded.description
        return {"name": name, "versions": [VERSION], "platform": PLATFORM,
                "inputs": [_tensor_meta(t) for t in d.inputs], "outputs": [_tensor_meta(t) for t in d.outputs]}

    # ---- inference -----------------------------------------------------------------------
    def start(self, name: str, version: str = "") -> Call:
        return Call(self, name, version)

    def infer(self, call: Call, inputs: list[TensorIn], outputs: Sequence[str] | None) -> Outcome:
        """Run the model on the inputs; `outputs`: model outputs and/or any tensor or node (None or
        empty: every model output). The call records its statistics on call.done()."""
        stored = self._ready(call.name, call.version)
        call.model_id = stored.id
        loaded = self.core.open(call.name)
        x = self._inputs(loaded, inputs)
        call.batch = int(inputs[0].shape[0]) if inputs and inputs[0].shape else 0
        graph_outputs = list(loaded.access.output_names)
        names = list(dict.fromkeys(outputs or ()))
        plain = not names or all(n in graph_outputs for n in names)
        tensors = {n: n for n in (names or graph_outputs)} if plain else {n: self._tensor(loaded, n) for n in names}
        self._numpy_types(loaded, tensors)
        t = time.perf_counter_ns()
        if plain:
            result = self.core.infer(call.name, x).outputs
            values = {n: result[n] for n in tensors}
        else:
            maps = self.core.feature_maps(call.name, x, list(dict.fromkeys(tensors.values())), raw=True)
            values = {n: maps.tensors[tensors[n]] for n in names}
        call.infer_ns += time.perf_counter_ns() - t
        out = []
        for n, v in values.items():
            arr = np.asarray(v)
            dt = datatype_of(arr.dtype.name)
            if not dt:
                raise errors.InvalidArgument(f"output '{n}' has the element type {arr.dtype.name}, which the "
                                             "protocol has no datatype for", field="outputs")
            out.append((n, dt, arr))
        return Outcome(call.name, VERSION, out)

    def _inputs(self, loaded, inputs: list[TensorIn]):
        """The core's input: the array of a one-input model, else a dict name -> array."""
        declared = {t.name: t for t in loaded.description.inputs}
        if not inputs:
            raise errors.InvalidArgument(f"the request has no inputs; the model takes {list(declared)}",
                                         field="inputs")
        seen = set()
        for t in inputs:
            if t.name not in declared:
                raise errors.InvalidArgument(f"input '{t.name}': the model has no such input; its inputs are "
                                             f"{list(declared)}", field=f"inputs.{t.name}")
            if t.name in seen:
                raise errors.InvalidArgument(f"input '{t.name}' is given twice", field=f"inputs.{t.name}")
            seen.add(t.name)
            want = datatype_of(declared[t.name].dtype)
            if want and t.datatype != want:
                raise errors.InvalidArgument(f"input '{t.name}' has datatype {t.datatype}; the model takes "
                                             f"{want}", field=f"inputs.{t.name}")
            dims = declared[t.name].shape
            if dims is not None and len(dims) != len(t.shape):
                shown = [d if isinstance(d, int) else -1 for d in dims]
                raise errors.InvalidArgument(f"input '{t.name}' has shape {list(t.shape)}; the model takes "
                                             f"{len(dims)} dimensions {shown}", field=f"inputs.{t.name}")
        missing = [n for n in declared if n not in seen]
        if missing:
            raise errors.InvalidArgument(f"the model's input(s) {missing} are missing", field="inputs")
        if len(declared) == 1:
            return inputs[0].array
        return {t.name: t.array for t in inputs}

    def _numpy_types(self, loaded, tensors: dict[str, str]) -> None:
        """FAILED_PRECONDITION for bfloat16 inputs or outputs: onnxruntime's Python API has no
        numpy type for them, so neither a feed nor a fetch can carry one."""
        from inspector.graph.info import dtype_name, value_infos

        for t in loaded.description.inputs:
            if t.dtype == "bfloat16":
                raise errors.FailedPrecondition(
                    f"input '{t.name}' is bfloat16, which onnxruntime's Python API cannot feed (numpy has no "
                    "bfloat16); this server cannot run the model", field=f"inputs.{t.name}")
        infos = loaded.access.memo(("oip value infos",), lambda: value_infos(loaded.model))
        for asked, tensor in tensors.items():
            vi = infos.get(tensor)
            if vi is not None and dtype_name(vi.type.tensor_type.elem_type) == "bfloat16":
                raise errors.FailedPrecondition(
                    f"output '{asked}' is bfloat16, which onnxruntime's Python API cannot return (numpy has no "
                    "bfloat16); ask for a float tensor next to it (e.g. the input of its Cast)",
                    field=f"outputs.{asked}")

    def _tensor(self, loaded, name: str) -> str:
        """The tensor a requested output names: a tensor name, or a node name (its output)."""
        from inspector.graph.select import resolve_tensors

        try:
            found = loaded.access.memo(("oip output", name), lambda: resolve_tensors(loaded.model, [name]))
        except errors.InvalidArgument as exc:
            raise errors.InvalidArgument(f"requested output '{name}': the model has no output, tensor or node of "
                                         f"that name ({exc.message})", field=f"outputs.{name}") from None
        if len(found) != 1:
            raise errors.InvalidArgument(f"requested output '{name}' selects {len(found)} tensors (an op type); "
                                         "name one tensor or node", field=f"outputs.{name}")
        return found[0]

    # ---- statistics ----------------------------------------------------------------------
    def _record(self, call: Call, ok: bool, total_ns: int) -> None:
        if call.model_id is None:
            try:
                call.model_id = self.core.store.get(call.name).id
            except errors.InspectorError:
                return  # an unknown model has no statistics
        with self._lock:
            s = self._stats.setdefault(call.model_id, ModelStats())
            if not ok:
                s.fail.add(total_ns)
                return
            s.success.add(total_ns)
            s.compute_input.add(call.input_ns)
            s.compute_infer.add(call.infer_ns)
            s.compute_output.add(call.output_ns)
            s.inference_count += max(call.batch, 1)
            s.execution_count += 1
            s.last_inference = time.time_ns() // 1_000_000
            b = s.batches.setdefault(max(call.batch, 1), (Duration(), Duration(), Duration()))
            b[0].add(call.input_ns)
            b[1].add(call.infer_ns)
            b[2].add(call.output_ns)

    def statistics(self, name: str = "", version: str = "") -> list[tuple[str, ModelStats]]:
        """(name, a copy of its counters) for the model, or every ready model when name is empty."""
        import copy

        if name:
            stored = self._stored(name, version)
            pairs = [(name, stored.id)]
        else:
            pairs = [(s.name or s.id, s.id) for s in self.core.store.list() if s.id not in self._unloaded]
        with self._lock:
            return [(n, copy.deepcopy(self._stats.get(i, ModelStats()))) for n, i in pairs]

    # ---- the model repository ----------------------------------------------------------------
    def index(self, ready_only: bool = False) -> list[dict]:
        """Every stored model by each of its names (by id when it has none), READY or UNAVAILABLE,
        then the model files under the model roots not stored yet (UNAVAILABLE, not loaded)."""
        rows, names = [], set()
        for s in self.core.store.list():
            unloaded = s.id in self._unloaded
            for n in getattr(s, "names", ()) or (s.name or s.id,):
                names.add(n)
                rows.append({"name": n, "version": VERSION, "state": "UNAVAILABLE" if unloaded else "READY",
                             "reason": "unloaded" if unloaded else ""})
        for n in sorted(self._root_models()):
            if n not in names:
                rows.append({"name": n, "version": "", "state": "UNAVAILABLE",
                             "reason": "not loaded: a model file under a model root"})
        return [r for r in rows if r["state"] == "READY"] if ready_only else rows

    def _root_models(self) -> dict[str, Path]:
        """name -> model file under the model roots, in Triton's layouts and as <name>.onnx."""
        found: dict[str, Path] = {}
        for root in self.core.config.model_roots:
            root = Path(root)
            if not root.is_dir():
                continue
            for p in sorted(root.iterdir()):
                if p.is_file() and p.suffix == ".onnx":
                    found.setdefault(p.stem, p)
                elif p.is_dir():
                    for c in [p / "model.onnx", *sorted(p.glob("*/model.onnx"), reverse=True)]:
                        if c.is_file():
                            found.setdefault(p.name, c)
                            break
        return found

    def load(self, name: str, parameters: dict | None = None) -> None:
        """Make the model READY: a stored one at once; else a `file:...` parameter's bytes (which
        take the name over, as a new file does in Triton), or the model file of that name under a
        model root, is stored under the name first."""
        if not name:
            raise errors.InvalidArgument("the model name is empty", field="model_name")
        parameters = parameters or {}
        files = {k: v for k, v in parameters.items() if k.startswith("file:")}
        if len(files) > 1:
            raise errors.InvalidArgument(f"give one model file, not {sorted(files)}", field="parameters")
        if files:
            data = next(iter(files.values()))
            if not isinstance(data, bytes | bytearray):
                raise errors.InvalidArgument(f"parameter '{next(iter(files))}' must carry the model's bytes",
                                             field="parameters")
            info = self.core.load_model(bytes(data), name=name, replace=True)  # Triton: the new file wins
        else:
            try:
                info = self.core.store.get(name)
            except errors.NotFound:
                path = self._root_models().get(name)
                if path is None:
                    raise errors.NotFound(f"no model '{name}' in the store or under the model roots "
                                          f"({', '.join(map(str, self.core.config.model_roots)) or 'none configured'})",
                                          field="model_name") from None
                info = self.core.load_path(str(path), name=name)
        self.core.open(name)  # opens (and checks) it now, as Triton does on load
        with self._lock:
            self._unloaded.discard(info.id)

    def unload(self, name: str, parameters: dict | None = None) -> None:
        """Mark the model UNAVAILABLE and drop its sessions; `delete: true` also removes it from the store."""
        stored = self._stored(name)
        if (parameters or {}).get("delete") is True:
            self.core.unload(name)
            with self._lock:
                self._stats.pop(stored.id, None)
                self._unloaded.discard(stored.id)
            return
        with self._lock:
            self._unloaded.add(stored.id)
        self.core.sessions.evict((stored.id,))


def _tensor_meta(t) -> dict:
    shape = [-1 if not isinstance(d, int) else int(d) for d in (t.shape or ())]
    return {"name": t.name, "datatype": datatype_of(t.dtype), "shape": shape}
