"""onnxruntime sessions, created once per key and shared: an LRU cache plus a thin Session wrapper.

Options follow docs/probes.md: ORT_ENABLE_ALL, and no intra-op spinning so several live sessions
on few cores do not slow each other down 2x. Feeds are checked before ORT sees them, so a
wrong input gets a sentence naming the input, the expected and the actual dtype or shape.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from inspector import errors
from inspector.runtime.ort_errors import load_error, run_error

ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(bfloat16)": "bfloat16", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(int16)": "int16", "tensor(uint16)": "uint16", "tensor(int32)": "int32",
              "tensor(uint32)": "uint32", "tensor(int64)": "int64", "tensor(uint64)": "uint64",
              "tensor(bool)": "bool"}
WATCH_INTERVAL_S = 0.005


class Session:
    """One onnxruntime session; `run` checks feeds, maps errors and honours cancellation."""

    def __init__(self, inner: ort.InferenceSession) -> None:
        self.inner = inner
        self.providers: tuple[str, ...] = tuple(inner.get_providers())
        self._inputs = {i.name: i for i in inner.get_inputs()}
        self.input_names: tuple[str, ...] = tuple(self._inputs)
        self.output_names: tuple[str, ...] = tuple(o.name for o in inner.get_outputs())

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None,
            cancelled: Callable[[], bool] | None = None) -> dict[str, np.ndarray]:
        """Run and return {output name: array} for `outputs` (default: every output)."""
        feeds = {name: np.asarray(value) for name, value in feeds.items()}
        self._check(feeds)
        names = list(outputs) if outputs else list(self.output_names)
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise errors.InvalidArgument(
                f"the model has no output {', '.join(map(repr, unknown))}", field="outputs")
        options = ort.RunOptions()
        stop = threading.Event()
        watcher = None
        if cancelled is not None:
            if cancelled():
                raise errors.Cancelled("the call was cancelled before the model ran")
            context = contextvars.copy_context()  # `cancelled` may read the caller's contextvars
            watcher = threading.Thread(target=_watch, args=(lambda: context.run(cancelled), options, stop),
                                       daemon=True)
            watcher.start()
        try:
            values = self.inner.run(names, feeds, options)
        except Exception as exc:  # ORT's exception classes share no base (docs/probes.md section 5)
            if options.terminate:
                raise errors.Cancelled("the call was cancelled; the model run was stopped") from None
            raise run_error(exc) from None
        finally:
            stop.set()
            if watcher is not None:
                watcher.join()
        return dict(zip(names, values, strict=True))

    def _check(self, feeds: dict[str, np.ndarray]) -> None:
        """InvalidArgument for a missing, unknown, wrongly typed or wrongly shaped input."""
        missing = [n for n in self._inputs if n not in feeds]
        extra = [n for n in feeds if n not in self._inputs]
        if missing or extra:
            raise errors.InvalidArgument(
                (f"missing input {', '.join(map(repr, missing))}; " if missing else "")
                + (f"unknown input {', '.join(map(repr, extra))}; " if extra else "")
                + f"the model's inputs are {', '.join(map(repr, self._inputs))}", field="inputs")
        for name, value in feeds.items():
            arg = self._inputs[name]
            want = ORT_DTYPES.get(arg.type)
            expected = "[" + ", ".join("?" if d is None else str(d) for d in arg.shape) + "]"
            if want is not None and value.dtype.name != want:
                raise errors.InvalidArgument(
                    f"input '{name}' must be {want}, got {value.dtype.name}", field=name)
            if len(arg.shape) != value.ndim:
                raise errors.InvalidArgument(
                    f"input '{name}' must have {len(arg.shape)} dimensions {expected}, got "
                    f"{value.ndim} {list(value.shape)}", field=name)
            for axis, (dim, got) in enumerate(zip(arg.shape, value.shape, strict=True)):
                if isinstance(dim, int) and dim >= 0 and dim != got:
                    raise errors.InvalidArgument(
                        f"input '{name}' must have size {dim} in dimension {axis} (shape "
                        f"{expected}), got {list(value.shape)}", field=name)


def _watch(cancelled: Callable[[], bool], options: ort.RunOptions, stop: threading.Event) -> None:
    """Set `terminate` on the run's options as soon as the caller is gone."""
    while not stop.wait(WATCH_INTERVAL_S):
        if cancelled():
            options.terminate = True
            return


class SessionCache:
    """Sessions by key, least recently used dropped first; each key is built once at a time."""

    def __init__(self, *, intra_op_threads: int | None = None, max_entries: int = 32) -> None:
        self._threads = intra_op_threads
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, Session] = OrderedDict()
        self._building: dict[tuple, threading.Lock] = {}
        self._counts: Counter[str] = Counter()

    def get(self, key: Hashable, build: Callable[[], onnx.ModelProto | bytes | Path],
            providers: Sequence[str]) -> Session:
        """The session for (key, providers); `build` supplies the model only on a miss."""
        full = (key, tuple(providers))
        with self._lock:
            if (hit := self._hit(full)) is not None:
                return hit
            building = self._building.setdefault(full, threading.Lock())
        with building:
            with self._lock:
                if (hit := self._hit(full)) is not None:
                    return hit
                self._counts["misses"] += 1
            try:
                session = Session(self._create(build(), providers))
            finally:
                with self._lock:
                    self._building.pop(full, None)
            with self._lock:
                self._entries[full] = session
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
                    self._counts["evictions"] += 1
            return session

    def evict(self, prefix: Hashable) -> None:
        """Drop every session whose key (as a tuple) starts with `prefix` (e.g. a model id)."""
        prefix = prefix if isinstance(prefix, tuple) else (prefix,)
        with self._lock:
            for full in [k for k in self._entries if _as_tuple(k[0])[:len(prefix)] == prefix]:
                del self._entries[full]

    def stats(self) -> dict[str, int]:
        """Hits, misses, LRU evictions and the current number of sessions."""
        with self._lock:
            return {"hits": self._counts["hits"], "misses": self._counts["misses"],
                    "evictions": self._counts["evictions"], "entries": len(self._entries)}

    def _hit(self, full: tuple) -> Session | None:
        session = self._entries.get(full)
        if session is not None:
            self._entries.move_to_end(full)
            self._counts["hits"] += 1
        return session

    def _create(self, source: onnx.ModelProto | bytes | Path,
                providers: Sequence[str]) -> ort.InferenceSession:
        """A new InferenceSession; a Path loads by path so external data next to it works."""
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self._threads:
            options.intra_op_num_threads = self._threads
        if isinstance(source, onnx.ModelProto):
            source = source.SerializeToString()
        elif isinstance(source, Path):
            source = str(source)
        try:
            return ort.InferenceSession(source, options, providers=list(providers))
        except Exception as exc:  # ORT's exception classes share no base
            raise load_error(exc) from None


def _as_tuple(key: Hashable) -> tuple:
    return key if isinstance(key, tuple) else (key,)


class SizedSessionCache(SessionCache):
    """A SessionCache that also drops least-recently-used sessions beyond `max_bytes`.

    A session's cost is estimated as its model's bytes x `factor` (weights plus ORT's
    prepacked copies and arena); the newest session is always kept, however large.
    """

    def __init__(self, *, max_bytes: int, factor: float = 3.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_bytes, self.factor = max_bytes, factor
        self._sizes: dict[tuple, int] = {}

    def get(self, key: Hashable, build: Callable, providers: Sequence[str]) -> Session:
        measured: list[int] = []

        def build_measured():
            source = build()
            measured.append(_source_bytes(source))
            return source

        session = super().get(key, build_measured, providers)
        if measured:
            full = (key, tuple(providers))
            with self._lock:
                self._sizes[full] = int(measured[0] * self.factor)
                self._trim(full)
        return session

    def stats(self) -> dict[str, int]:
        out = super().stats()
        with self._lock:
            out["bytes"] = sum(self._sizes.get(k, 0) for k in self._entries)
        return out

    def _trim(self, keep: tuple) -> None:
        """Evict LRU sessions (never `keep`) until the estimate fits; caller holds the lock."""
        self._sizes = {k: v for k, v in self._sizes.items() if k in self._entries}
        total = sum(self._sizes.values())
        for full in list(self._entries):
            if total <= self.max_bytes:
                break
            if full != keep:
                del self._entries[full]
                total -= self._sizes.pop(full, 0)
                self._counts["evictions"] += 1


def _source_bytes(source: onnx.ModelProto | bytes | Path) -> int:
    """Bytes of a model given as proto, serialized bytes or a file (with its folder's data files)."""
    if isinstance(source, onnx.ModelProto):
        return source.ByteSize()
    if isinstance(source, bytes | bytearray):
        return len(source)
    folder = Path(source).parent
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
