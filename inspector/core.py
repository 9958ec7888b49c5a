"""Inspector: the core API, one object per process; the gRPC service is a thin edge over it.

Every method takes what the client takes (a numpy array, encoded image bytes, a path, a list of
them; targets as an index, classes, a dict or a seed array) and returns the result types the
client returns (inspector_client.types), so `from inspector import Inspector` does everything
in-process. Arguments left at None mean the owning layer's default (a method's, a renderer's,
MaximizeConfig's), never one restated here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Iterable, Sequence

import numpy as np
from inspector_client.types import (
    AuditReport,
    Evaluation,
    Explanation,
    FeatureMaps,
    Gradients,
    Inference,
    Maximization,
    ModelInfo,
    Progress,
    Weights,
)

from inspector.config import InspectorConfig
from inspector.inputs import InputData, PreparedInput, as_input
from inspector.models import LoadedModel, OpenModels


def given(**kw) -> dict:
    """The keyword arguments that were given (None means: the owner's default)."""
    return {k: v for k, v in kw.items() if v is not None}


class Inspector:
    """Models in a store, opened on demand (OpenModels); inspection calls over them."""

    def __init__(self, config: InspectorConfig | None = None) -> None:
        self.config = config or InspectorConfig()
        self.models = OpenModels(self.config)

    @property
    def store(self):
        return self.models.store

    @property
    def sessions(self):
        return self.models.sessions

    # ---- models -------------------------------------------------------------------------
    def upload(self, chunks: Iterable[bytes], *, name: str | None = None, preprocess: dict | None = None,
               providers: Sequence[str] = (), replace: bool = False) -> ModelInfo:
        """Store a model streamed as byte chunks; the id is the sha256 of its bytes. `name` is an
        alias with its own spec and providers; one held by another model moves only with `replace`."""
        return self.models.upload(chunks, name=name, preprocess=preprocess, providers=providers, replace=replace)

    def load_model(self, path_or_bytes=None, *, server_path: str | None = None, name: str | None = None,
                   preprocess: dict | None = None, providers: Sequence[str] = (), replace: bool = False) -> ModelInfo:
        """As the client: a local model file or its bytes, or a path under a model root."""
        from pathlib import Path

        if server_path is not None:
            return self.load_path(server_path, name=name, preprocess=preprocess, providers=providers,
                                  replace=replace)
        data = path_or_bytes if isinstance(path_or_bytes, bytes | bytearray) else Path(path_or_bytes).read_bytes()
        return self.upload([bytes(data)], name=name, preprocess=preprocess, providers=providers, replace=replace)

    def load_path(self, server_path: str, *, name: str | None = None, preprocess: dict | None = None,
                  providers: Sequence[str] = (), replace: bool = False) -> ModelInfo:
        """Store a model the server reads from under one of its model roots."""
        return self.models.load_path(server_path, name=name, preprocess=preprocess, providers=providers,
                                     replace=replace)

    def list_models(self) -> list[ModelInfo]:
        """Every stored model, without layers, from the store's metadata: the description and
        gradient verdict recorded when the model was first opened; nothing is fetched or opened.
        An entry without them (an older store) is opened once here, which records them."""
        return [self.models.listed(s) or self.models.info(self.models.get(s.id), layers=False)
                for s in self.store.list()]

    def quarantined(self) -> list[str]:
        """Store entries moved aside as corrupt when the server started (see store.vetting)."""
        from inspector.store.vetting import quarantined

        return quarantined(self.store.root)

    def model_info(self, ref: str) -> ModelInfo:
        return self.models.info(self.models.get(ref), layers=True)

    def unload(self, ref: str) -> str:
        """By name: remove that name (the model goes with its last name); by id: the model."""
        return self.models.unload(ref)

    unload_model = unload

    def open(self, ref: str) -> LoadedModel:
        """The opened model (graph, access) for in-process use of methods."""
        return self.models.get(ref)

    # ---- inspection calls ---------------------------------------------------------------
    def infer(self, ref: str, x, *, preprocess: dict | None = None) -> Inference:
        loaded, prepared = self._prepared(ref, x, preprocess)
        with held(loaded, prepared):
            outputs = loaded.access.forward(prepared.x)
        return Inference({n: outputs[n] for n in loaded.access.output_names}, **loaded.meta())

    def feature_maps(self, ref: str, x, layers: Sequence[str] | None = None, *, raw: bool = True,
                     png: bool = False, stats: bool = False, float16: bool = False, cmap: str | None = None,
                     normalize: str | None = None, channels: Sequence[int] | None = None,
                     top_k: int | None = None, label: bool | None = None,
                     preprocess: dict | None = None) -> FeatureMaps:
        """The chosen tensors (names, node names, op types, "all"; default: the model's main
        feature layers) for the batch, raw and/or as PNG channel grids (`label`: each tile's channel
        index written on it; `.channels` says which channels each grid shows) and per-channel stats."""
        from inspector.graph.select import resolve_tensors
        from inspector.imaging.features import grid_channels
        from inspector.imaging.render import channel_stats, render_feature_grid

        loaded, prepared = self._prepared(ref, x, preprocess)
        access = loaded.access
        names = access.memo(("select", tuple(layers or ())), lambda: resolve_tensors(loaded.model, layers))
        with held(loaded, prepared):
            values = access.forward_exposed(prepared.x, names, float16=float16)
        render = given(cmap=cmap, normalize=normalize, top_k=top_k, label=label,
                       channels=tuple(channels) if channels else None)
        result = FeatureMaps(names=list(names), **loaded.meta())
        for name in names:
            t = values[name]
            if raw:
                result.tensors[name] = t
            if png:
                images = [np.asarray(t[i], np.float32) for i in range(t.shape[0] if t.ndim else 0)]
                titled = {"title": name} if label else {}
                result.pngs[name] = [render_feature_grid(image, **render, **titled) for image in images]
                result.channels[name] = [grid_channels(image, render.get("channels"), top_k).tolist()
                                         for image in images]
            if stats and t.ndim >= 2:
                result.stats[name] = {k: np.asarray(v) for k, v in channel_stats(t).items()}
        return result

    def weights(self, ref: str, layers: Sequence[str] | None = None, *, raw: bool = True, png: bool = False,
                histogram: bool = False, stats: bool = False, mode: str | None = None,
                cmap: str | None = None) -> Weights:
        """Conv/Gemm weights by initializer name: raw, filter grids, histograms, per-filter stats."""
        from inspector.audit.weights import filter_stats
        from inspector.graph.weights import find_weights
        from inspector.imaging.render import render_filter_grid, render_histogram

        loaded = self.models.get(ref)
        result = Weights(**loaded.meta())
        for w in find_weights(loaded.model, layers):
            arr = w.array
            result.layers[w.initializer] = {"layer": w.node, "op_type": w.op_type, "role": w.role}
            if raw:
                result.tensors[w.initializer] = arr
            if png and w.role == "weight" and arr.ndim in (2, 4):
                result.pngs[w.initializer] = render_filter_grid(arr, **given(mode=mode, cmap=cmap))
            if histogram:
                result.histograms[w.initializer] = render_histogram(arr.ravel(), title=f"{w.node}: {w.initializer}")
            if stats:
                result.stats[w.initializer] = filter_stats(arr)
        return result

    def gradients(self, ref: str, x, wrt: Sequence[str] | None = None, target=None,
                  policy: str | None = None, *, preprocess: dict | None = None) -> Gradients:
        """d(target)/d(wrt) per wrt tensor (default: the model input; target default: top-1)."""
        from inspector.methods.base import as_target
        from inspector.methods.run import gradients

        loaded, prepared = self._prepared(ref, x, preprocess)
        with held(loaded, prepared):
            result = gradients(loaded.access, prepared.x, wrt, as_target(target), policy)
        notes = _quantized_note(loaded) + [
            f"image {i}: the gradient with respect to '{name}' is zero everywhere (the target does not "
            "change with it here, e.g. dead ReLUs or saturated quantization); check the target"
            for name, g in result.gradients.items() for i in range(len(g)) if not np.any(g[i])]
        return _noted(dataclasses.replace(result, **loaded.meta()), notes)

    def explain(self, ref: str, x, method: str | None = None, target=None,
                layers: str | Sequence[str] | None = None, params: dict | None = None, *,
                overlay: bool = True, cmap: str | None = None, alpha: float | None = None,
                preprocess: dict | None = None, **more_params) -> Explanation:
        """Run an attribution method (see `methods()`); params are the method's keyword arguments.
        Overlays (one PNG per image) blend the heatmap over the image as the model saw it."""
        from inspector.graph.select import resolve_tensors
        from inspector.imaging.render import render_overlay
        from inspector.methods import get_method
        from inspector.methods.base import as_target

        loaded, prepared = self._prepared(ref, x, preprocess)
        impl = get_method(method)
        layers = [layers] if isinstance(layers, str) else layers
        tensors = resolve_tensors(loaded.model, list(layers)) if layers else None  # node names too
        with held(loaded, prepared):
            exp = impl.explain(loaded.access, prepared.x, as_target(target), tensors,
                               **{**(params or {}), **more_params})
        pngs = [render_overlay(*self._overlay_base(prepared, exp.heatmap[i], i), **given(cmap=cmap, alpha=alpha))
                for i in range(exp.heatmap.shape[0])] if overlay else []
        notes = (_quantized_note(loaded) if impl.uses_gradients else []) + [
            f"image {i}: the heatmap is constant: the method found no evidence for the target here "
            f"(layers used: {', '.join(exp.layers) or 'the input'}; try another layer, target or method)"
            for i in range(len(exp.heatmap)) if not np.ptp(exp.heatmap[i]) > 0]
        return _noted(dataclasses.replace(exp, overlay_png=pngs, **loaded.meta()), notes)

    def evaluate(self, ref: str, x, explanation, metrics: Sequence[str] | None = None, target=None,
                 params: dict | None = None, *, preprocess: dict | None = None, **more_params) -> Evaluation:
        """Faithfulness metrics of a heatmap (an Explanation or [N, H, W]); an Explanation's own
        target is scored when no target is given."""
        from inspector_client.types import target_from_names

        from inspector.methods import evaluate
        from inspector.methods.base import as_target

        if target is None and isinstance(explanation, Explanation):
            target = target_from_names(explanation.targets)
        loaded, prepared = self._prepared(ref, x, preprocess)
        with held(loaded, prepared):
            values = evaluate(loaded.access, prepared.x, explanation, metrics, target=as_target(target),
                              **{**(params or {}), **more_params})
        return Evaluation(values, **loaded.meta())

    def methods(self) -> list[dict]:
        from inspector.methods import METHODS

        return [{"name": name, "doc": cls.doc, "uses_gradients": cls.uses_gradients,
                 "defaults": dict(cls.defaults)} for name, cls in METHODS.items()]

    def maximize(self, ref: str, layer: str | None, channels: Sequence[int], steps: int | None = None,
                 objective: str | None = None, *, preview_every: int | None = None,
                 on_progress: Callable[[Progress], None] | None = None, params: dict | None = None,
                 **more_params) -> Maximization:
        """Activation maximization; progress events go to on_progress while it runs."""
        return _drain(self.maximize_stream(ref, layer, channels, steps, objective, preview_every=preview_every,
                                           params={**(params or {}), **more_params}), on_progress)

    def maximize_stream(self, ref: str, layer: str | None, channels: Sequence[int], steps: int | None = None,
                        objective: str | None = None, *, preview_every: int | None = None,
                        params: dict | None = None) -> Generator[Progress, None, Maximization]:
        """maximize as a generator of Progress events that returns the Maximization."""
        from inspector.maximize.request import run

        loaded = self.models.get(ref)
        gen = run(loaded.access, loaded.metadata.get("preprocess"), loaded.description.inputs[0], layer,
                  channels, steps=steps, objective=objective, params=params, preview_every=preview_every)
        return _stamped(gen, loaded)

    def audit(self, ref: str, batches: Iterable, layers: Sequence[str] | None = None, *,
              labels: Sequence[int] | None = None, preprocess: dict | None = None,
              on_progress: Callable[[Progress], None] | None = None, resume_state: bytes | None = None,
              checkpoint_every: int = 0, columnar: bool = False) -> AuditReport:
        """Aggregated activation statistics over a stream of batches (each anything `infer`
        takes); see audit_stream for checkpoints and resuming."""
        return _drain(self.audit_stream(ref, batches, layers, labels=labels, preprocess=preprocess,
                                        resume_state=resume_state, checkpoint_every=checkpoint_every,
                                        columnar=columnar), on_progress)

    def audit_stream(self, ref: str, batches: Iterable, layers: Sequence[str] | None = None, *,
                     labels: Sequence[int] | None = None, preprocess: dict | None = None,
                     resume_state: bytes | None = None, checkpoint_every: int = 0,
                     columnar: bool = False) -> Generator[Progress, None, AuditReport]:
        """audit as a generator: a Progress per batch (a "state" checkpoint every
        `checkpoint_every` batches), then the AuditReport (`columnar`: per-channel arrays)."""
        from inspector.audit.request import run

        loaded = self.models.get(ref)

        def prepare(batch) -> PreparedInput:
            return self.models.prepare(loaded, as_input(batch, preprocess))

        gen = run(loaded.access, loaded.name or loaded.id[:12], prepare, batches, layers=layers,
                  labels=labels, resume_state=resume_state, checkpoint_every=checkpoint_every,
                  columnar=columnar)
        return _stamped(gen, loaded)

    # ---- internals ----------------------------------------------------------------------
    @staticmethod
    def _overlay_base(prepared: PreparedInput, heat: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(picture, heatmap on it): the user's own picture at its true size and aspect when the
        input came as images, else the input as the model saw it."""
        if prepared.originals and prepared.spec is not None:
            from inspector.imaging.preprocess import heat_on_original

            picture = prepared.originals[i]
            return picture, heat_on_original(heat, prepared.spec, picture.shape[:2])
        return prepared.display(i), heat

    def _prepared(self, ref: str, x, preprocess: dict | None) -> tuple[LoadedModel, PreparedInput]:
        loaded = self.models.get(ref)
        return loaded, self.models.prepare(loaded, as_input(x, preprocess))


def held(loaded: LoadedModel, prepared: PreparedInput):
    """Runs inside hold the model's other inputs fixed (models with several inputs)."""
    return loaded.access.holding(prepared.others)


QUANTIZED_OPS = frozenset({"QuantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger", "QGemm",
                           "DynamicQuantizeLSTM"})


def _quantized_note(loaded: LoadedModel) -> list[str]:
    """The straight-through estimator, said where it was used."""
    ops = loaded.access.memo(("quantized ops",), lambda: sorted(
        {n.op_type for n in loaded.model.graph.node if n.op_type in QUANTIZED_OPS or n.op_type.startswith("QLinear")}))
    notes = [f"gradients pass the quantized ops ({', '.join(ops)}) by the straight-through estimator: each "
             "is differentiated as its dequantized float equivalent, zero where quantization saturates"] if ops else []
    dtype = loaded.description.inputs[0].dtype or "float32"
    if np.issubdtype(np.dtype(dtype), np.integer):
        notes.append(f"the input '{loaded.description.inputs[0].name}' holds {dtype}: gradients are taken with "
                     "respect to its float value (a straight-through Cast)")
    return notes


def _noted(result, notes: list[str]):
    return dataclasses.replace(result, warnings=[*result.warnings, *notes]) if notes else result


def _stamped(gen: Generator, loaded: LoadedModel) -> Generator:
    """The generator's events, then its result with the model's metadata."""
    result = yield from gen
    return dataclasses.replace(result, **loaded.meta())


def _drain(gen: Generator, on_progress: Callable[[Progress], None] | None):
    """Run a streaming call to its end, handing each event to on_progress."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(event)


__all__ = ["Inspector", "InputData", "LoadedModel"]
