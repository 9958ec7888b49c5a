"""Inspector: the core API, one object per process. The gRPC service is a thin edge over it.

Every public method takes plain Python/numpy values and returns domain objects or a Result
(scalars + named items), so `from inspector import Inspector` does everything in-process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from inspector import errors
from inspector.config import InspectorConfig
from inspector.domain import ModelInfo, RunMetadata
from inspector.inputs import InputData, PreparedInput, prepare_input, spec_from_dict, spec_to_dict
from inspector.results import Result

log = logging.getLogger("inspector")
MAXIMIZE_SIZE = (128, 128)  # activation maximization on models without a fixed input size


@dataclass
class LoadedModel:
    """A stored model opened for work: its graph, description and model access."""

    id: str
    name: str | None
    model: onnx.ModelProto
    description: object  # graph.info.ModelDescription
    providers: list[str]
    warnings: list[str]
    access: object  # runtime.access.OrtModelAccess
    metadata: dict  # a copy of the store's: preprocess spec, providers
    blocking: list[str] | None = None  # ops without a gradient rule, computed on first need

    def run_metadata(self) -> RunMetadata:
        used = tuple(self.access.providers_used()) if hasattr(self.access, "providers_used") else ()
        return RunMetadata(self.id, used or tuple(self.providers), list(self.warnings))


class Inspector:
    """Models in a store, opened on demand; inspection calls over them."""

    def __init__(self, config: InspectorConfig | None = None) -> None:
        from inspector.runtime.sessions import SizedSessionCache
        from inspector.store.model_store import ModelStore

        self.config = config or InspectorConfig()
        self.store = ModelStore(Path(self.config.store_dir))
        self.sessions = SizedSessionCache(intra_op_threads=self.config.intra_op_threads,
                                          max_entries=self.config.max_sessions,
                                          max_bytes=self.config.max_session_bytes,
                                          factor=self.config.session_bytes_factor)
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    # ---- models -------------------------------------------------------------------------
    def upload(self, chunks: Iterable[bytes], *, name: str | None = None,
               preprocess: dict | None = None, providers: Sequence[str] = ()) -> ModelInfo:
        """Store a model streamed as byte chunks; the id is the sha256 of its bytes."""
        stored = self.store.put_bytes(chunks, name=name or None, max_bytes=self.config.max_upload_bytes,
                                      metadata=self._metadata(preprocess, providers))
        return self._accept(stored)

    def load_path(self, server_path: str, *, name: str | None = None,
                  preprocess: dict | None = None, providers: Sequence[str] = ()) -> ModelInfo:
        """Store a model the server reads from under one of its model roots."""
        path = self._confined(server_path)
        stored = self.store.put_path(path, name=name or None,
                                     metadata=self._metadata(preprocess, providers))
        return self._accept(stored)

    def list_models(self) -> list[ModelInfo]:
        return [self._info(self._open(s.id), layers=False) for s in self.store.list()]

    def quarantined(self) -> list[str]:
        """Store entries moved aside as corrupt when the server started (see store.vetting)."""
        from inspector.store.vetting import quarantined

        return quarantined(self.config.store_dir)

    def model_info(self, ref: str) -> ModelInfo:
        return self._info(self._open(ref), layers=True)

    def unload(self, ref: str) -> str:
        stored = self.store.delete(ref)
        with self._lock:
            self._loaded.pop(stored.id, None)
        self.sessions.evict((stored.id,))
        return stored.id

    # ---- inspection calls -----------------------------------------------------------------
    def infer(self, ref: str, inp: InputData) -> Result:
        from inspector.calls.features import infer

        loaded = self._open(ref)
        return infer(loaded, self._input(loaded, inp).x)

    def feature_maps(self, ref: str, inp: InputData, layers: Sequence[str] | None = None, *,
                     raw: bool = True, png: bool = False, stats: bool = False, float16: bool = False,
                     render=None) -> Result:
        from inspector.calls.features import feature_maps

        loaded = self._open(ref)
        return feature_maps(loaded, self._input(loaded, inp).x, layers, raw=raw, png=png,
                            stats=stats, float16=float16, render=render)

    def weights(self, ref: str, layers: Sequence[str] | None = None, **options) -> Result:
        from inspector.calls.weights import weights

        return weights(self._open(ref), layers, **options)

    def gradients(self, ref: str, inp: InputData, wrt: Sequence[str] | None = None, target=None,
                  policy: str = "standard") -> Result:
        from inspector.calls.gradients import gradients

        loaded = self._open(ref)
        return gradients(loaded, self._input(loaded, inp).x, wrt, target, policy)

    def explain(self, ref: str, inp: InputData, method: str = "gradcam", target=None,
                layers: Sequence[str] | None = None, params: dict | None = None, **overlay) -> Result:
        from inspector.calls.explain import explain

        loaded = self._open(ref)
        return explain(loaded, self._input(loaded, inp), method, target, layers, params or {}, **overlay)

    def evaluate(self, ref: str, inp: InputData, heatmap, target=None,
                 metrics: Sequence[str] = ("deletion", "insertion"), params: dict | None = None) -> Result:
        from inspector.calls.explain import evaluate

        loaded = self._open(ref)
        return evaluate(loaded, self._input(loaded, inp), heatmap, target, metrics, params or {})

    def methods(self) -> list[dict]:
        from inspector.methods import METHODS

        return [{"name": name, "doc": cls.doc, "uses_gradients": cls.uses_gradients,
                 "defaults": dict(cls.defaults)} for name, cls in METHODS.items()]

    def maximize(self, ref: str, layer: str, channels: Sequence[int], *, steps: int = 256,
                 objective: str = "channel", params: dict | None = None, preview_every: int = 0):
        """A generator of results.Progress events that returns the final Result."""
        from inspector.calls.maximize import maximize

        loaded = self._open(ref)
        params = dict(params or {})
        spec = self._image_spec(loaded, params.get("size"))
        return maximize(loaded, spec, layer, channels, steps=steps, objective=objective,
                        params=params, preview_every=preview_every)

    def audit(self, ref: str, batches: Iterable[InputData], *, layers: Sequence[str] | None = None,
              preprocess: dict | None = None, labels: Sequence[int] | None = None,
              resume_state: bytes | None = None, checkpoint_every: int = 0, columnar: bool = False):
        """A generator of Progress events (one per batch) that returns the audit as a Result
        (`columnar`: per-channel statistics as arrays, see calls.audit)."""
        from inspector.calls.audit import audit

        loaded = self._open(ref)

        def prepare(inp: InputData) -> PreparedInput:
            if preprocess:
                inp = InputData(inp.tensor, inp.images, {**preprocess, **(inp.preprocess or {})})
            return self._input(loaded, inp)

        return audit(loaded, prepare, batches, layers=layers, labels=labels, resume_state=resume_state,
                     checkpoint_every=checkpoint_every, columnar=columnar)

    def _image_spec(self, loaded: LoadedModel, size=None):
        """The model's resolved preprocessing; with `size`, images of that size (any model)."""
        from inspector.imaging.preprocess import resolve_spec

        spec = dict(loaded.metadata.get("preprocess") or {})
        if size is not None:
            spec["resize"] = (int(size), int(size)) if isinstance(size, int | float) else tuple(size)
            spec.pop("crop", None)
        try:
            return resolve_spec(spec_from_dict(spec), loaded.description.inputs[0])
        except errors.InvalidArgument:  # a dynamic input size and no resize: the default size
            spec["resize"], spec["crop"] = MAXIMIZE_SIZE, None
            return resolve_spec(spec_from_dict(spec), loaded.description.inputs[0])

    # ---- internals ----------------------------------------------------------------------
    def _metadata(self, preprocess: dict | None, providers: Sequence[str]) -> dict:
        spec = spec_from_dict(preprocess)  # validates field names early
        return {"preprocess": spec_to_dict(spec), "providers": list(providers)}

    def _accept(self, stored) -> ModelInfo:
        """Open a freshly stored model; a model that will not open is removed again."""
        with self._lock:  # a re-upload may carry a new spec or providers: reopen
            self._loaded.pop(stored.id, None)
        from inspector.store.vetting import vet_model

        try:
            for warning in vet_model(stored.path, stored.size_bytes,
                                     stored.metadata.get("preprocess"), self.config):
                log.warning("model %s: %s", stored.id[:12], warning)
            loaded = self._open(stored.id)
            loaded.access.session_for_outputs(())  # a first session: fails here on models ORT refuses
        except errors.InspectorError:
            self._forget(stored.id)
            raise
        except Exception as exc:  # onnx/ort failures on a user's file are the user's problem
            self._forget(stored.id)
            raise errors.InvalidArgument(f"the model could not be loaded: {_short(exc)}",
                                         field="model") from exc
        return self._info(loaded, layers=True)

    def _forget(self, model_id: str) -> None:
        with self._lock:
            self._loaded.pop(model_id, None)
        try:
            self.store.delete(model_id)
        except errors.NotFound:
            pass

    def _confined(self, server_path: str) -> Path:
        if not server_path:
            raise errors.InvalidArgument("server_path is empty", field="server_path")
        path = Path(server_path).resolve()
        for root in self.config.model_roots:
            if path.is_relative_to(Path(root).resolve()):
                if not path.is_file():
                    raise errors.NotFound(f"no model file at {server_path!r} under the model roots")
                return path
        raise errors.PermissionDenied(
            f"{server_path!r} is not under a configured model root; start the server with "
            "--model-root DIR to allow loading from DIR")

    def _open(self, ref: str) -> LoadedModel:
        from inspector.graph.info import describe_model
        from inspector.runtime.access import OrtModelAccess
        from inspector.runtime.providers import resolve_providers

        stored = self.store.get(ref)
        with self._lock:
            loaded = self._loaded.get(stored.id)
        if loaded is not None:
            return loaded
        model = onnx.load(str(stored.path))
        requested = stored.metadata.get("providers") or self.config.providers
        providers, warnings = resolve_providers(requested, strict=self.config.strict_providers)
        access = OrtModelAccess(model, providers, sessions=self.sessions, key=(stored.id,),
                                source=stored.path)
        loaded = LoadedModel(stored.id, stored.name, model, describe_model(model), providers,
                             warnings, access, dict(stored.metadata))
        with self._lock:
            self._loaded[stored.id] = loaded
            while len(self._loaded) > self.config.max_sessions:  # oldest opened goes first
                self._loaded.pop(next(iter(self._loaded)))
        return loaded

    def _info(self, loaded: LoadedModel, *, layers: bool) -> ModelInfo:
        from inspector.graph.autodiff import blocking_ops

        d = loaded.description
        stored = self.store.get(loaded.id)
        if loaded.blocking is None:  # building the gradient model is the test; kept in the store
            saved = stored.metadata.get("differentiability") or {}
            if saved.get("rules") == _rules_version():
                loaded.blocking = list(saved["blocking_ops"])
            else:
                try:
                    loaded.blocking = [f"{op} ({node})" for op, node in blocking_ops(loaded.model)]
                except errors.InspectorError as exc:
                    loaded.blocking = [exc.message]
                self.store.update_metadata(loaded.id, {**stored.metadata, "differentiability": {
                    "rules": _rules_version(), "blocking_ops": loaded.blocking}})
        blocking = loaded.blocking
        return ModelInfo(id=loaded.id, name=stored.name, size_bytes=stored.size_bytes,
                         inputs=d.inputs, outputs=d.outputs, opsets=dict(d.opsets), producer=d.producer,
                         layers=tuple(d.layers) if layers else (),
                         preprocess=spec_from_dict(loaded.metadata.get("preprocess")),
                         differentiable=not blocking, blocking_ops=tuple(blocking),
                         created=stored.created)

    def _input(self, loaded: LoadedModel, inp: InputData) -> PreparedInput:
        c = self.config
        return prepare_input(inp, loaded.description.inputs[0], loaded.metadata.get("preprocess"),
                             max_batch=c.max_batch, max_pixels=c.max_image_pixels,
                             max_bytes=c.max_image_bytes)

    def open(self, ref: str) -> LoadedModel:
        """The opened model (graph, access) for in-process use of methods."""
        return self._open(ref)


def _rules_version() -> str:
    """Changes whenever the gradient engine's set of rules does (a saved verdict goes stale)."""
    import hashlib

    from inspector.graph.autodiff import supported_ops

    return hashlib.sha256(",".join(supported_ops()).encode()).hexdigest()[:16]


def _short(exc: Exception) -> str:
    """An exception text without server paths or C++ source locations."""
    from inspector.runtime.ort_errors import clean

    return clean(str(exc))


__all__ = ["Inspector", "InputData", "LoadedModel"]
