"""OrtModelAccess: the ModelAccess protocol over cached onnxruntime sessions.

Forward runs use a variant of the model with the fetched tensors exposed as outputs (built by
graph.expose); backward runs use the gradient model from graph.autodiff. Each variant is built
once per (model, selection, policy, providers) and kept in the shared SessionCache, so a new
class index or seed only changes the seed input.

Batches: a model whose input declares a fixed batch size B (torch.onnx.export's default is 1)
still takes any batch here. The first batch of another size checks once whether the model runs
with dim 0 made symbolic (runtime.batching.free_batch) and gives the same values as runs of B;
if so every variant is built from that freed model, else each call is split into runs of B
(the last padded with copies of its last image) and the results joined along axis 0.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

from inspector import errors
from inspector.graph.expose import expose_tensors
from inspector.graph.info import image_first
from inspector.runtime import batching
from inspector.runtime.cancellation import cancellation_active, is_cancelled, raise_if_cancelled
from inspector.runtime.sessions import ORT_DTYPES, Session, SessionCache

log = logging.getLogger(__name__)
SEED = "\0seed"  # the seed's place among the batch-carrying feeds of backward()
_HELD: contextvars.ContextVar[dict | None] = contextvars.ContextVar("held_inputs", default=None)  # id -> feeds
_CHUNK: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("batch_chunk", default=None)


class OrtModelAccess:
    """ModelAccess for one model on one provider list; thread-safe.

    `free_batch=False` never frees a fixed batch dimension (always splits), for comparisons.
    """

    def __init__(self, model: onnx.ModelProto, providers: Sequence[str] = ("CPUExecutionProvider",),
                 *, sessions: SessionCache | None = None, key: tuple = (), source: Path | None = None,
                 free_batch: bool = True) -> None:
        self._model = model
        self._providers = list(providers)
        self._sessions = sessions or SessionCache()
        self._key = key or (id(model),)
        self._source = source  # the file on disk, so a plain session loads external data by path
        self._lock = threading.Lock()
        self._exposed: dict[tuple, dict[str, str]] = {}
        self._gradients: dict[tuple, object] = {}  # GradientModel without its ModelProto
        self._memo: dict[tuple, object] = {}
        self._used: tuple[str, ...] = ()
        self._initializers = frozenset(i.name for i in model.graph.initializer)
        self._inputs = image_first(model, [i.name for i in model.graph.input if i.name not in self._initializers])
        self._outputs = tuple(o.name for o in model.graph.output)
        self._shapes = batching.declared_shapes(model)
        self._batch = batching.fixed_batch(model, self._inputs[0]) if self._inputs else None
        self._may_free = free_batch
        self._freed: bool | None = None if self._batch is not None else False
        self._free_lock = threading.Lock()
        self.free_checks = 0  # how often the freed model was checked (at most once)

    @property
    def graph(self) -> onnx.ModelProto:
        return self._model

    @property
    def input_name(self) -> str:
        return self._inputs[0]

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    @property
    def input_shapes(self) -> dict[str, tuple[int | str | None, ...] | None]:
        """Declared dims of each model input: int when fixed, the symbolic name or None if not."""
        return dict(self._shapes)

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model's input declares (None: symbolic); any batch is accepted."""
        return self._batch

    @property
    def batch_freed(self) -> bool | None:
        """Whether a fixed batch dimension runs freed (True) or split (False); None until checked."""
        return self._freed

    def providers_used(self) -> tuple[str, ...]:
        """What onnxruntime actually used for the latest session (after any CUDA fallback)."""
        return self._used

    def check_cancelled(self) -> None:
        raise_if_cancelled()

    def memo(self, key: tuple, compute):
        """A value derived from the model alone (default layer, a selection), computed once."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        value = compute()
        with self._lock:
            return self._memo.setdefault(key, value)

    # --- the model variants are built from ---------------------------------------------------

    def _prefix(self) -> tuple:
        return (*self._key, "freed") if self._freed else self._key

    def _base(self) -> onnx.ModelProto:
        """The model every variant is built from: the freed copy once it was checked."""
        if self._freed:
            return batching.free_batch(self._model, self.input_name, self._batch)
        return self._model

    def _plain(self, freed: bool) -> Callable[[], onnx.ModelProto | Path]:
        if freed:
            return lambda: batching.free_batch(self._model, self.input_name, self._batch)
        return (lambda: self._source) if self._source is not None else (lambda: self._model)

    def _run(self, session: Session, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> dict:
        self._used = session.providers
        missing = [n for n in session.input_names if n not in feeds]
        if missing:
            feeds = {**feeds, **self._held(missing, feeds.get(self.input_name))}
        return session.run(feeds, outputs, cancelled=is_cancelled if cancellation_active() else None)

    # --- models with several inputs: the others are held fixed -------------------------------

    @contextlib.contextmanager
    def holding(self, others: dict[str, np.ndarray]):
        """Within this block (this thread or task), every run feeds `others` to the model inputs
        besides the image input: methods attribute to the image input and hold these fixed."""
        unknown = sorted(set(others) - set(self._inputs))
        if unknown:
            raise errors.InvalidArgument(f"the model has no input(s) {unknown}; its inputs are "
                                         f"{self._inputs}", field="input")
        if self.input_name in others:
            raise errors.InvalidArgument(f"'{self.input_name}' is the image input; send it as the input, "
                                         "the others by name", field="input")
        token = _HELD.set({**(_HELD.get() or {}), id(self): dict(others)})
        try:
            yield self
        finally:
            _HELD.reset(token)

    def _held(self, missing: list[str], image: np.ndarray | None) -> dict[str, np.ndarray]:
        """The held inputs a run needs, one row each repeated to the image batch where the input
        has a batch dimension; a clear error for inputs nobody gave."""
        held = (_HELD.get() or {}).get(id(self), {})
        absent = [n for n in missing if n not in held]
        if absent:
            raise errors.InvalidArgument(
                f"the model also takes input(s) {absent} besides the image input '{self.input_name}'; "
                f"give every input by name, e.g. x = {{'{self.input_name}': image, '{absent[0]}': array}}",
                field="input")
        rows = None if image is None or image.ndim == 0 else len(image)
        chunk = _CHUNK.get()
        out = {}
        for name in missing:
            v = np.asarray(held[name])
            if chunk is not None and v.ndim and len(v) == chunk[0] > 1:  # one row per image: this run's rows
                v = batching.pad_rows(np.ascontiguousarray(v[chunk[1]:chunk[2]]), chunk[3])
            dims = self._shapes.get(name) or ()
            batched = bool(dims) and not isinstance(dims[0], int)  # a symbolic leading dim
            if rows is not None and batched and v.ndim and len(v) != rows:
                if len(v) != 1:
                    raise errors.InvalidArgument(
                        f"input '{name}' has {len(v)} rows but this run has {rows} images; hold it fixed "
                        "with one row (shared by every image) or one row per image sent", field="input")
                v = np.repeat(v, rows, axis=0)
            out[name] = v
        return out

    def session_for_outputs(self, names: Sequence[str], *, float16: bool = False) -> tuple[Session, dict[str, str]]:
        """The session exposing `names` (beyond the graph outputs) and name -> output name."""
        extra = tuple(n for n in dict.fromkeys(names) if n not in self._outputs or float16)
        key = (*self._prefix(), "expose", extra, float16)
        if not extra:
            session = self._sessions.get(key, self._plain(bool(self._freed)), self._providers)
            return session, {n: n for n in self._outputs}
        with self._lock:
            mapping = self._exposed.get(key)
        if mapping is None:
            exposed = expose_tensors(self._base(), list(extra), as_float16=float16)
            mapping = exposed.outputs
            with self._lock:
                self._exposed[key] = mapping
            build = lambda: exposed.model  # noqa: E731
        else:
            build = lambda: expose_tensors(self._base(), list(extra), as_float16=float16).model  # noqa: E731
        session = self._sessions.get(key, build, self._providers)
        return session, {**{n: n for n in self._outputs}, **mapping}

    # --- batches -----------------------------------------------------------------------------

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        """x as an array; InvalidArgument (naming x's own shape) when a non-batch dim is wrong."""
        x = np.asarray(x)
        dims = self._shapes.get(self.input_name) if self._inputs else None
        if dims is None:
            return x
        expected = "[" + ", ".join(["N", *("?" if not isinstance(d, int) else str(d) for d in dims[1:])]) + "]"
        if x.ndim != len(dims):
            raise errors.InvalidArgument(
                f"input '{self.input_name}' must have {len(dims)} dimensions {expected}, got "
                f"{x.ndim} {list(x.shape)}", field=self.input_name)
        for axis in range(1, x.ndim):
            if isinstance(dims[axis], int) and dims[axis] != x.shape[axis]:
                raise errors.InvalidArgument(
                    f"input '{self.input_name}' must have size {dims[axis]} in dimension {axis} "
                    f"(shape {expected}), got {list(x.shape)}", field=self.input_name)
        return x

    def _splits(self, x: np.ndarray) -> bool:
        """Whether a run on x must be split into runs of the fixed batch (after the one check)."""
        held = (_HELD.get() or {}).get(id(self), {})
        if self._batch is not None and len(x) not in (0, self._batch) and any(
                np.ndim(v) and len(v) == len(x) > 1 and isinstance((self._shapes.get(k) or (None,))[0], int)
                for k, v in held.items()):
            return True  # other inputs with a row per image keep their fixed batch: split them alongside
        if self._batch is None or len(x) == self._batch or len(x) == 0 or not self._may_free:
            return self._batch is not None and len(x) not in (0, self._batch)
        with self._free_lock:
            if self._freed is None:
                self._freed = self._check_freed(x)
        return not self._freed

    def _check_freed(self, x: np.ndarray) -> bool:
        """Run two batches of B (real images, the second mirrored) through the original model and
        once stacked through the freed copy; the freed copy is used if it agrees."""
        self.free_checks += 1
        b = self._batch
        held = (_HELD.get() or {}).get(id(self), {})
        if any(np.ndim(v) and len(v) == len(x) > 1 for v in held.values()):
            return False  # other inputs with a row per image: keep the export's batch and split
        rows = self._declared_dtype(np.ascontiguousarray(x[np.arange(b) % len(x)]))
        halves = [rows, np.ascontiguousarray(np.flip(rows, axis=-1))]
        plain = self._sessions.get((*self._key, "expose", (), False), self._plain(False), self._providers)
        singles = [self._run(plain, {self.input_name: h}, None) for h in halves]  # held inputs too
        try:
            freed = self._sessions.get((*self._key, "freed", "expose", (), False), self._plain(True),
                                       self._providers)
            why = batching.agree(self._run(freed, {self.input_name: np.concatenate(halves)}, None), *singles)
        except Exception as exc:  # a model that does not run freed (a Reshape to [1, -1], ...)
            why = f"{type(exc).__name__}: {exc}"
        if why is not None:
            log.info("the model's batch of %d stays fixed (runs are split): %s", b, why)
            self._sessions.evict((*self._key, "freed"))
        return why is None

    def _declared_dtype(self, x: np.ndarray) -> np.ndarray:
        """x as the image input's declared type (float values for an integer input rounded and
        clipped, as a gradient run's straight-through Cast takes them)."""
        elem = next((i.type.tensor_type.elem_type for i in self._model.graph.input if i.name == self.input_name), 0)
        if not elem:
            return x
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
        if np.issubdtype(dtype, np.integer) and not np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.round(x), info.min, info.max).astype(dtype)
        return x.astype(dtype, copy=False)

    def _leading(self) -> dict[str, int | str | None]:
        """Dim 0 of every tensor shape inference knows, from the original model."""
        def compute():
            from inspector.graph.info import value_infos

            out: dict[str, int | str | None] = {}
            for name, vi in value_infos(self._model).items():
                dims = vi.type.tensor_type.shape.dim if vi.type.tensor_type.HasField("shape") else ()
                if dims:
                    d = dims[0]
                    out[name] = int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
            return out
        return self.memo(("batching", "leading"), compute)

    def _batched(self, x: np.ndarray, feeds: dict[str, np.ndarray], run: Callable[[dict], dict], *,
                 leading: dict | None = None, constant=()) -> dict:
        """run(feeds), every feed carrying the batch of x: at once, or in runs of the fixed batch
        (padded rows: copies of the last one, zeros for the seed) joined along axis 0."""
        if not self._splits(x):
            return run(feeds)
        n, b = len(x), self._batch
        uneven = [k for k, v in feeds.items() if len(v) != n]
        if uneven:
            shown = "the seed" if uneven[0] == SEED else repr(uneven[0])
            raise batching.refuse(b, n, f"{shown} has {len(feeds[uneven[0]])} rows, not {n}")
        parts = []
        for start, stop, pad in batching.chunks(n, b):
            chunk = {k: batching.pad_rows(np.ascontiguousarray(v[start:stop]), pad, zero=k == SEED)
                     for k, v in feeds.items()}
            token = _CHUNK.set((n, start, stop, pad))  # held inputs with a row per image follow the split
            try:
                parts.append((run(chunk), stop - start))
            finally:
                _CHUNK.reset(token)
        return batching.join(parts, b, n, leading=self._leading() if leading is None else leading,
                             constant=constant)

    # --- runs --------------------------------------------------------------------------------

    def forward(self, x: np.ndarray, fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        x = self._check_input(x)

        def run(feeds):
            session, mapping = self.session_for_outputs(fetch)
            values = self._run(session, feeds, list(dict.fromkeys(mapping.values())))
            return {name: values[out] for name, out in mapping.items()}
        return self._batched(x, {self.input_name: x}, run, constant=self._initializers)

    def forward_exposed(self, x: np.ndarray, names: Sequence[str], *, float16: bool = False) -> dict[str, np.ndarray]:
        """Only the tensors in `names` (optionally cast to float16 inside the graph)."""
        x = self._check_input(x)

        def run(feeds):
            session, mapping = self.session_for_outputs(names, float16=float16)
            wanted = {n: mapping[n] for n in names}
            values = self._run(session, feeds, list(dict.fromkeys(wanted.values())))
            return {n: values[o] for n, o in wanted.items()}
        return self._batched(x, {self.input_name: x}, run, constant=self._initializers)

    def forward_replacing(self, x: np.ndarray, values: dict[str, np.ndarray],
                          fetch: Sequence[str]) -> dict[str, np.ndarray]:
        """Run with the tensors in `values` replaced by the given arrays; return `fetch`."""
        from inspector.graph.replace import with_tensors_as_inputs

        x = self._check_input(x)
        names, fetch = tuple(values), tuple(fetch)

        def run(feeds):
            session = self._sessions.get(
                (*self._prefix(), "replace", names, fetch),
                lambda: with_tensors_as_inputs(self._base(), names, fetch), self._providers)
            if self.input_name not in session.input_names:
                feeds = {k: v for k, v in feeds.items() if k != self.input_name}
            feeds = {k: _as_input_type(v, session, k) if k in names else v for k, v in feeds.items()}
            return self._run(session, feeds, list(fetch))
        feeds = {n: np.ascontiguousarray(v) for n, v in values.items()}
        feeds[self.input_name] = x
        return self._batched(x, feeds, run, constant=self._initializers)

    def forward_variant(self, key: tuple, build: Callable[[onnx.ModelProto], onnx.ModelProto],
                        x: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Run the variant that `build` makes from the model (built once per key, e.g. the audit model)."""
        x = self._check_input(x)

        def run(feeds):
            session = self._sessions.get((*self._prefix(), "variant", *key), lambda: build(self._base()),
                                         self._providers)
            return self._run(session, feeds, list(outputs))
        return self._batched(x, {self.input_name: x}, run)

    def gradient_model(self, start: str, wrt: Sequence[str], policy: str = "standard",
                       fetch: Sequence[str] = ()):
        """(key, GradientModel, build): after the first build only the names are kept here; the
        ModelProto (weights included) lives in the cached sessions and `build()` remakes it."""
        from inspector.graph.autodiff import build_gradient_model

        key = (start, tuple(wrt), policy, tuple(fetch))
        names_key = (*key, bool(self._freed))

        def build():
            return build_gradient_model(self._base(), start, list(wrt), policy=policy, fetch=list(fetch),
                                        float32_edges=True)  # float32 seeds in, float32 gradients out

        with self._lock:
            names = self._gradients.get(names_key)
        if names is not None:
            return key, names, lambda: build().model
        gm = build()
        with self._lock:
            self._gradients[names_key] = dataclasses.replace(gm, model=None)
        return key, gm, lambda: gm.model

    def backward_top1(self, x: np.ndarray, start: str, wrt: Sequence[str], policy: str = "standard",
                      fetch: Sequence[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """backward() seeded by each image's top-1 class of `start` [N, K], in one run.

        Returns (gradients by wrt name, forward values of `start` and the fetched tensors).
        """
        from inspector.graph.seeding import seed_from_top1

        x = self._check_input(x)
        fetch = list(dict.fromkeys([*fetch, start]))

        def run(feeds):
            key, gm, build = self.gradient_model(start, wrt, policy, fetch)
            session = self._sessions.get((*self._prefix(), "grad-top1", *key),
                                         lambda: seed_from_top1(dataclasses.replace(gm, model=build()), start).model,
                                         self._providers)
            grads, fetched = self._run_gradient(session, gm, feeds)
            return {**{("grad", w): v for w, v in grads.items()}, **{("fetch", n): v for n, v in fetched.items()}}
        leading = self._leading() if self._splits(x) else {}
        out = self._batched(x, {self.input_name: x}, run,
                            leading={(kind, n): d for n, d in leading.items() for kind in ("grad", "fetch")},
                            constant={("fetch", n) for n in fetch if n in self._initializers})
        return ({n: v for (kind, n), v in out.items() if kind == "grad"},
                {n: v for (kind, n), v in out.items() if kind == "fetch"})

    def _run_gradient(self, session: Session, gm, feeds: dict[str, np.ndarray]) -> tuple[dict, dict]:
        """(gradients by wrt name, fetched forward values by name) of one run.

        An integer input the gradient model takes as float32 (gm.float_inputs, the straight-through
        Cast of graph.autodiff.inputs) is fed its integer values: rounded, clipped, as float32."""
        for name in getattr(gm, "float_inputs", ()):
            if name in feeds:
                feeds = {**feeds, name: self._integer_values(name, feeds[name])}
        names = list(dict.fromkeys([*gm.gradient_outputs.values(), *gm.fetch_outputs.values()]))
        values = self._run(session, feeds, names)
        return ({w: values[o] for w, o in gm.gradient_outputs.items()},
                {n: values[o] for n, o in gm.fetch_outputs.items()})

    def _integer_values(self, name: str, x: np.ndarray) -> np.ndarray:
        """x as the integer values the model's integer input `name` holds, in float32."""
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.integer):
            return x.astype(np.float32)
        elem = next(i.type.tensor_type.elem_type for i in self._model.graph.input if i.name == name)
        info = np.iinfo(onnx.helper.tensor_dtype_to_np_dtype(elem))
        return np.clip(np.round(x), info.min, info.max).astype(np.float32)

    def backward(self, x: np.ndarray, start: str, seed: np.ndarray, wrt: Sequence[str],
                 policy: str = "standard", fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        x = self._check_input(x)

        def run(feeds):
            key, gm, build = self.gradient_model(start, wrt, policy, fetch)
            session = self._sessions.get((*self._prefix(), "grad", *key), build, self._providers)
            grads, fetched = self._run_gradient(
                session, gm, {self.input_name: feeds[self.input_name], gm.seed_input: feeds[SEED]})
            return {**fetched, **grads}  # a name both fetched and differentiated means its gradient
        feeds = {self.input_name: x, SEED: np.ascontiguousarray(seed, np.float32)}
        fetched_constants = {n for n in fetch if n in self._initializers and n not in wrt}
        return self._batched(x, feeds, run, constant=fetched_constants)


def _as_input_type(value: np.ndarray, session: Session, name: str) -> np.ndarray:
    """A replacement value in the element type of the session input `name` (a float16 layer gets
    float16; an integer one rounded and clipped), so float32 edits fit any model's dtype."""
    want = next((ORT_DTYPES.get(i.type) for i in session.inner.get_inputs() if i.name == name), None)
    value = np.asarray(value)
    if want is None or want == "bfloat16" or value.dtype.name == want:
        return value
    dtype = np.dtype(want)
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(value.dtype, np.integer):
        info = np.iinfo(dtype)
        value = np.clip(np.round(value), info.min, info.max)
    return np.ascontiguousarray(value, dtype)
