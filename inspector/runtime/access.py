"""OrtModelAccess: the ModelAccess protocol over cached onnxruntime sessions.

Forward runs use a variant of the model with the fetched tensors exposed as outputs (built by
graph.expose); backward runs use the gradient model from graph.autodiff. Each variant is built
once per (model, selection, policy, providers) and kept in the shared SessionCache, so a new
class index or seed only changes the seed input.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

from inspector.graph.expose import expose_tensors
from inspector.runtime.cancellation import cancellation_active, is_cancelled, raise_if_cancelled
from inspector.runtime.sessions import Session, SessionCache


class OrtModelAccess:
    """ModelAccess for one model on one provider list; thread-safe."""

    def __init__(self, model: onnx.ModelProto, providers: Sequence[str] = ("CPUExecutionProvider",),
                 *, sessions: SessionCache | None = None, key: tuple = (), source: Path | None = None) -> None:
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
        inits = {i.name for i in model.graph.initializer}
        self._inputs = [i.name for i in model.graph.input if i.name not in inits]
        self._outputs = tuple(o.name for o in model.graph.output)

    @property
    def graph(self) -> onnx.ModelProto:
        return self._model

    @property
    def input_name(self) -> str:
        return self._inputs[0]

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

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

    def _run(self, session: Session, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> dict:
        self._used = session.providers
        return session.run(feeds, outputs, cancelled=is_cancelled if cancellation_active() else None)

    def session_for_outputs(self, names: Sequence[str], *, float16: bool = False) -> tuple[Session, dict[str, str]]:
        """The session exposing `names` (beyond the graph outputs) and name -> output name."""
        extra = tuple(n for n in dict.fromkeys(names) if n not in self._outputs or float16)
        key = (*self._key, "expose", extra, float16)
        if not extra:
            build = (lambda: self._source) if self._source is not None else (lambda: self._model)
            session = self._sessions.get(key, build, self._providers)
            return session, {n: n for n in self._outputs}
        with self._lock:
            mapping = self._exposed.get(key)
        if mapping is None:
            exposed = expose_tensors(self._model, list(extra), as_float16=float16)
            mapping = exposed.outputs
            with self._lock:
                self._exposed[key] = mapping
            build = lambda: exposed.model  # noqa: E731
        else:
            build = lambda: expose_tensors(self._model, list(extra), as_float16=float16).model  # noqa: E731
        session = self._sessions.get(key, build, self._providers)
        return session, {**{n: n for n in self._outputs}, **mapping}

    def forward(self, x: np.ndarray, fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        session, mapping = self.session_for_outputs(fetch)
        values = self._run(session, {self.input_name: x}, list(dict.fromkeys(mapping.values())))
        return {name: values[out] for name, out in mapping.items()}

    def forward_exposed(self, x: np.ndarray, names: Sequence[str], *, float16: bool = False) -> dict[str, np.ndarray]:
        """Only the tensors in `names` (optionally cast to float16 inside the graph)."""
        session, mapping = self.session_for_outputs(names, float16=float16)
        wanted = {n: mapping[n] for n in names}
        values = self._run(session, {self.input_name: x}, list(dict.fromkeys(wanted.values())))
        return {n: values[o] for n, o in wanted.items()}

    def forward_replacing(self, x: np.ndarray, values: dict[str, np.ndarray],
                          fetch: Sequence[str]) -> dict[str, np.ndarray]:
        """Run with the tensors in `values` replaced by the given arrays; return `fetch`."""
        from inspector.graph.replace import with_tensors_as_inputs

        names, fetch = tuple(values), tuple(fetch)
        session = self._sessions.get(
            (*self._key, "replace", names, fetch),
            lambda: with_tensors_as_inputs(self._model, names, fetch), self._providers)
        feeds = {n: np.ascontiguousarray(v) for n, v in values.items()}
        if self.input_name in session.input_names:
            feeds[self.input_name] = x
        return self._run(session, feeds, list(fetch))

    def forward_variant(self, key: tuple, build: Callable[[onnx.ModelProto], onnx.ModelProto],
                        x: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Run the variant that `build` makes from the model (built once per key, e.g. the audit model)."""
        session = self._sessions.get((*self._key, "variant", *key), lambda: build(self._model), self._providers)
        return self._run(session, {self.input_name: x}, list(outputs))

    def gradient_model(self, start: str, wrt: Sequence[str], policy: str = "standard",
                       fetch: Sequence[str] = ()):
        """(key, GradientModel, build): after the first build only the names are kept here; the
        ModelProto (weights included) lives in the cached sessions and `build()` remakes it."""
        from inspector.graph.autodiff import build_gradient_model

        key = (start, tuple(wrt), policy, tuple(fetch))

        def build():
            return build_gradient_model(self._model, start, list(wrt), policy=policy, fetch=list(fetch))

        with self._lock:
            names = self._gradients.get(key)
        if names is not None:
            return key, names, lambda: build().model
        gm = build()
        with self._lock:
            self._gradients[key] = dataclasses.replace(gm, model=None)
        return key, gm, lambda: gm.model

    def backward_top1(self, x: np.ndarray, start: str, wrt: Sequence[str], policy: str = "standard",
                      fetch: Sequence[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """backward() seeded by each image's top-1 class of `start` [N, K], in one run.

        Returns (gradients by wrt name, forward values of `start` and the fetched tensors).
        """
        from inspector.graph.seeding import seed_from_top1

        fetch = list(dict.fromkeys([*fetch, start]))
        key, gm, build = self.gradient_model(start, wrt, policy, fetch)
        session = self._sessions.get((*self._key, "grad-top1", *key),
                                     lambda: seed_from_top1(dataclasses.replace(gm, model=build()), start).model,
                                     self._providers)
        return self._run_gradient(session, gm, {self.input_name: x})

    def _run_gradient(self, session: Session, gm, feeds: dict[str, np.ndarray]) -> tuple[dict, dict]:
        """(gradients by wrt name, fetched forward values by name) of one run."""
        names = list(dict.fromkeys([*gm.gradient_outputs.values(), *gm.fetch_outputs.values()]))
        values = self._run(session, feeds, names)
        return ({w: values[o] for w, o in gm.gradient_outputs.items()},
                {n: values[o] for n, o in gm.fetch_outputs.items()})

    def backward(self, x: np.ndarray, start: str, seed: np.ndarray, wrt: Sequence[str],
                 policy: str = "standard", fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        key, gm, build = self.gradient_model(start, wrt, policy, fetch)
        session = self._sessions.get((*self._key, "grad", *key), build, self._providers)
        feeds = {self.input_name: x, gm.seed_input: np.ascontiguousarray(seed, np.float32)}
        grads, fetched = self._run_gradient(session, gm, feeds)
        return {**fetched, **grads}  # a name both fetched and differentiated means its gradient
