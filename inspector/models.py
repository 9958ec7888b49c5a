"""OpenModels: the models of a store, vetted on admission and opened on demand.

It owns admission (vetting, path confinement, removal of a model that will not open), the LRU
of open models, the gradient verdict and the model's description written back to the store (a
listing reads them from there, opening nothing), and the prepared input of a request.
`Inspector` (core.py) is the facade over it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from inspector import errors
from inspector.config import InspectorConfig
from inspector.domain import ModelInfo
from inspector.inputs import InputData, PreparedInput, prepare_inputs, spec_from_dict, spec_to_dict

log = logging.getLogger("inspector")

# The description a listing reads from the store's metadata ("description"): ModelInfo's fields
# without layers. Bump when its format or describe_model's output for these fields changes; an
# entry with another version is opened once more and rewritten.
DESCRIPTION_VERSION = 1


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

    def meta(self) -> dict:
        """The fields every result carries: model id, providers actually used, warnings."""
        used = tuple(self.access.providers_used())
        return {"model_id": self.id, "providers": used or tuple(self.providers),
                "warnings": list(self.warnings)}


class OpenModels:
    """A model store plus the models opened from it (an LRU bounded by config.max_sessions)."""

    def __init__(self, config: InspectorConfig) -> None:
        from inspector.runtime.sessions import SizedSessionCache
        from inspector.store import store_from_config

        self.config = config
        self.store = store_from_config(config)  # a folder, a shared folder or an S3 bucket
        self.sessions = SizedSessionCache(intra_op_threads=config.intra_op_threads,
                                          max_entries=config.max_sessions,
                                          max_bytes=config.max_session_bytes,
                                          factor=config.session_bytes_factor)
        self._open: dict[tuple, LoadedModel] = {}  # (id, requested providers) -> opened
        self._providers: dict[tuple, list[str]] = {}  # requested -> resolved, for listings
        self._lock = threading.Lock()

    # ---- admission ----------------------------------------------------------------------
    def upload(self, chunks: Iterable[bytes], *, name: str | None, preprocess: dict | None,
               providers: Sequence[str], replace: bool = False) -> ModelInfo:
        stored = self.store.put_bytes(chunks, name=name or None, max_bytes=self.config.max_upload_bytes,
                                      metadata=_metadata(preprocess, providers), replace=replace)
        return self.accept(stored)

    def load_path(self, server_path: str, *, name: str | None, preprocess: dict | None,
                  providers: Sequence[str], replace: bool = False) -> ModelInfo:
        stored = self.store.put_path(self.confined(server_path), name=name or None,
                                     metadata=_metadata(preprocess, providers), replace=replace)
        return self.accept(stored)

    def accept(self, stored) -> ModelInfo:
        """Open a freshly stored model; a model that will not open is removed again."""
        from inspector.store import hold
        from inspector.store.vetting import vet_model

        self._drop(stored.id)  # a re-upload may carry new providers: reopen
        try:
            with hold(self.store, stored.id):  # a bounded S3 cache keeps the files while they are vetted
                for warning in vet_model(stored.path, stored.size_bytes,
                                         stored.metadata.get("preprocess"), self.config):
                    log.warning("model %s: %s", stored.id[:12], warning)
                loaded = self.get(stored.name or stored.id)
                loaded.access.session_for_outputs(())  # a first session: fails here on models ORT refuses
        except errors.InspectorError:
            self.forget(stored.id)
            raise
        except Exception as exc:  # onnx/ort failures on a user's file are the user's problem
            self.forget(stored.id)
            raise errors.InvalidArgument(f"the model could not be loaded: {_short(exc)}",
                                         field="model") from exc
        return self.info(loaded, layers=True)

    def _drop(self, model_id: str) -> None:
        with self._lock:
            for key in [k for k in self._open if k[0] == model_id]:
                del self._open[key]

    def forget(self, model_id: str) -> None:
        """Drop a model from the open set and the store (a failed admission)."""
        self._drop(model_id)
        try:
            self.store.delete(model_id)
        except errors.NotFound:
            pass

    def unload(self, ref: str) -> str:
        """By name: that name (the model goes with its last name); by id: the model."""
        stored = self.store.delete(ref)
        try:
            self.store.get(stored.id)
        except errors.NotFound:  # the model itself is gone
            self._drop(stored.id)
            self.sessions.evict((stored.id,))
        return stored.id

    def confined(self, server_path: str) -> Path:
        """The path, when it lies under a configured model root."""
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

    # ---- open models --------------------------------------------------------------------
    def get(self, ref: str) -> LoadedModel:
        """The opened model for an id, id prefix or name (opened now if it is not yet)."""
        from inspector.graph.info import describe_model
        from inspector.runtime.access import OrtModelAccess
        from inspector.runtime.providers import resolve_providers
        from inspector.store import hold

        stored = self.store.get(ref)
        requested = tuple(stored.metadata.get("providers") or self.config.providers)
        key = (stored.id, requested)  # names of one model may prefer different providers
        with self._lock:
            loaded = self._open.get(key)
        if loaded is None:
            # Sessions load from stored.path later (plain runs, external data), so the store must
            # keep the files (a bounded S3 cache evicts models nobody holds): held until the last
            # reference to this access goes, i.e. it left self._open and no request still uses it.
            held = hold(self.store, stored.id)
            try:
                model = onnx.load(str(stored.path))
                providers, warnings = resolve_providers(requested, strict=self.config.strict_providers)
                access = OrtModelAccess(model, providers, sessions=self.sessions, key=(stored.id,),
                                        source=stored.path)
            except BaseException:
                held.release()
                raise
            weakref.finalize(access, held.release)
            loaded = LoadedModel(stored.id, stored.name, model, describe_model(model), providers,
                                 warnings, access, dict(stored.metadata))
            if not _description_current(stored.metadata):  # first opened anywhere: for listings
                stored = self._record_description(loaded, stored)
                loaded.metadata = dict(stored.metadata)
            with self._lock:
                loaded = self._open.setdefault(key, loaded)
                while len(self._open) > self.config.max_sessions:  # oldest opened goes first
                    self._open.pop(next(iter(self._open)))
        elif not _description_current(stored.metadata):  # open here, not described in the store
            stored = self._record_description(loaded, stored)
        if loaded.name != stored.name or loaded.metadata != stored.metadata:  # this name's spec
            loaded = dataclasses.replace(loaded, name=stored.name, metadata=dict(stored.metadata))
        return loaded

    def _record_description(self, loaded: LoadedModel, stored):
        """Write the model's description into its store metadata, for listings that open nothing;
        `stored` as it reads now. A store that cannot take it only costs later listings an open."""
        description = _description_doc(loaded.description)
        try:
            self.store.update_metadata(stored.id, {"description": description})
        except Exception as exc:  # an optimisation: the request that opened the model goes on
            log.warning("model %s: its description was not saved to the store: %s", stored.id[:12], exc)
            return stored
        return dataclasses.replace(stored, metadata={**stored.metadata, "description": description})

    def listed(self, stored) -> ModelInfo | None:
        """ModelInfo without layers for a store entry (as `store.list()` gives it) from its metadata
        alone, equal to `info(get(stored.id), layers=False)` and opening nothing; None when the
        entry has no current description or verdict (then it must be opened once)."""
        from inspector_client.types import json_ready

        meta = stored.metadata
        saved = meta.get("differentiability") or {}
        description = _description(meta)
        if description is None or saved.get("rules") != _rules_version():
            return None
        inputs, outputs, opsets, producer = description
        try:
            blocking = [str(op) for op in saved["blocking_ops"]]
        except (KeyError, TypeError):  # a damaged verdict: open the model (which computes it again)
            return None
        providers = self._resolved(tuple(meta.get("providers") or self.config.providers))
        preprocess = json_ready(spec_to_dict(spec_from_dict(meta.get("preprocess"))))
        return ModelInfo(id=stored.id, name=stored.name, names=stored.names, size_bytes=stored.size_bytes,
                         inputs=inputs, outputs=outputs, opsets=opsets, producer=producer, layers=(),
                         preprocess=preprocess, differentiable=not blocking, blocking_ops=tuple(blocking),
                         created=stored.created, providers=tuple(providers))

    def _resolved(self, requested: tuple) -> list[str]:
        """The providers opening a model with these requested ones would use (what `get` resolves;
        raises as it does under strict_providers); remembered, so a dropped provider's warning is
        logged once, not on every listing."""
        from inspector.runtime.providers import resolve_providers

        with self._lock:
            known = self._providers.get(requested)
        if known is None:
            known, _ = resolve_providers(requested, strict=self.config.strict_providers)
            with self._lock:
                self._providers[requested] = known
        return list(known)

    def verdict(self, loaded: LoadedModel) -> list[str]:
        """Ops without a gradient rule ("OpType (node)"); building the gradient model is the test,
        and its answer is kept in the store until the set of rules changes."""
        from inspector.graph.autodiff import blocking_ops

        if loaded.blocking is None:
            stored = self.store.get(loaded.id)
            saved = stored.metadata.get("differentiability") or {}
            if saved.get("rules") == _rules_version():
                loaded.blocking = list(saved["blocking_ops"])
            else:
                try:
                    loaded.blocking = [f"{op} ({node})" for op, node in blocking_ops(loaded.model)]
                except errors.InspectorError as exc:
                    loaded.blocking = [exc.message]
                self.store.update_metadata(loaded.id, {"differentiability": {
                    "rules": _rules_version(), "blocking_ops": loaded.blocking}})
        return loaded.blocking

    def info(self, loaded: LoadedModel, *, layers: bool) -> ModelInfo:
        from inspector_client.types import json_ready

        d = loaded.description
        stored = self.store.get(loaded.name or loaded.id)
        blocking = self.verdict(loaded)
        preprocess = json_ready(spec_to_dict(spec_from_dict(loaded.metadata.get("preprocess"))))
        return ModelInfo(id=loaded.id, name=stored.name, names=stored.names, size_bytes=stored.size_bytes,
                         inputs=d.inputs, outputs=d.outputs, opsets=dict(d.opsets), producer=d.producer,
                         layers=tuple(d.layers) if layers else (), preprocess=preprocess,
                         differentiable=not blocking, blocking_ops=tuple(blocking),
                         created=stored.created, providers=tuple(loaded.providers))

    def prepare(self, loaded: LoadedModel, inp: InputData) -> PreparedInput:
        """The request's input as the model's input batch, within the configured limits."""
        c = self.config
        return prepare_inputs(inp, loaded.description.inputs, loaded.metadata.get("preprocess"),
                              max_batch=c.max_batch, max_pixels=c.max_image_pixels,
                              max_bytes=c.max_image_bytes)


def _metadata(preprocess: dict | None, providers: Sequence[str]) -> dict:
    spec = spec_from_dict(preprocess)  # validates field names early
    return {"preprocess": spec_to_dict(spec), "providers": list(providers)}


def _description_doc(d) -> dict:
    """The JSON form of a ModelDescription's listing fields (graph.info.ModelDescription)."""
    return {"version": DESCRIPTION_VERSION,
            "inputs": [_tensor_doc(t) for t in d.inputs], "outputs": [_tensor_doc(t) for t in d.outputs],
            "opsets": dict(d.opsets), "producer": d.producer}


def _description(metadata: dict) -> tuple | None:
    """(inputs, outputs, opsets, producer) from the metadata's description; None when it has none,
    another version's or a damaged one (the model is then opened and describes itself again)."""
    d = metadata.get("description")
    if not isinstance(d, dict) or d.get("version") != DESCRIPTION_VERSION:
        return None
    try:
        return (tuple(_tensor(t) for t in d["inputs"]), tuple(_tensor(t) for t in d["outputs"]),
                {str(k): int(v) for k, v in d["opsets"].items()}, str(d["producer"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _description_current(metadata: dict) -> bool:
    return _description(metadata) is not None


def _tensor_doc(t) -> dict:
    return {"name": t.name, "dtype": t.dtype, "shape": None if t.shape is None else list(t.shape)}


def _tensor(doc: dict):
    from inspector.domain import TensorInfo

    shape = doc["shape"]
    return TensorInfo(str(doc["name"]), doc["dtype"], None if shape is None else tuple(shape))


def _rules_version() -> str:
    """Changes whenever the gradient engine's set of rules does (a saved verdict goes stale)."""
    import hashlib

    from inspector.graph.autodiff import supported_ops

    return hashlib.sha256(",".join(supported_ops()).encode()).hexdigest()[:16]


def _short(exc: Exception) -> str:
    """An exception text without server paths or C++ source locations."""
    from inspector.runtime.ort_errors import clean

    return clean(str(exc))
