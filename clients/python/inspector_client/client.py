"""InspectorClient: the thin Python client of the inspector gRPC service."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format, struct_pb2

from .assemble import assemble
from .shared_memory import DEFAULT_DIR, Probe, is_local_target, usable_dir
from .types import (
    Explanation,
    LayerInfo,
    Maximization,
    ModelInfo,
    Progress,
    StreamedResult,
    TensorInfo,
)
from .v1 import inspector_pb2 as pb
from .v1 import inspector_pb2_grpc as pb_grpc

UPLOAD_CHUNK = 1 << 20
Input = np.ndarray | bytes | str | os.PathLike | Sequence[bytes | str | os.PathLike]
TargetSpec = int | Sequence[int] | dict | np.ndarray | None


class InspectorClient:
    """Talk to an inspector server at `target` ("host:port").

    `x` arguments take a numpy array (used as the input tensor as is), encoded image bytes,
    an image file path, or a list of bytes/paths (a batch, preprocessed by the model's spec).

    Results from a server on this machine come through shared memory (files in `shm_dir`, the
    server's too) when both sides allow it; `shared_memory=False` always streams them over gRPC.
    """

    def __init__(self, target: str = "127.0.0.1:50051", token: str | None = None, *,
                 timeout: float | None = None, max_message_mb: int = 64,
                 credentials: grpc.ChannelCredentials | None = None,
                 tls_ca: str | os.PathLike | None = None, tls_cert: str | os.PathLike | None = None,
                 tls_key: str | os.PathLike | None = None, shared_memory: bool | None = None,
                 shm_dir: str | os.PathLike = DEFAULT_DIR) -> None:
        """TLS when `tls_ca` (PEM roots) or `tls_cert`+`tls_key` (mutual TLS) or `credentials`.

        `shared_memory`: None offers it when the target is local and `shm_dir` is writable, True
        offers it anyway, False never; the server uses it only after checking our probe file.
        """
        limit = max_message_mb << 20
        options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
        if credentials is None and (tls_ca or tls_cert or tls_key):
            if bool(tls_cert) != bool(tls_key):
                raise ValueError("give both tls_cert and tls_key for mutual TLS, or neither")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=Path(tls_ca).read_bytes() if tls_ca else None,
                private_key=Path(tls_key).read_bytes() if tls_key else None,
                certificate_chain=Path(tls_cert).read_bytes() if tls_cert else None)
        self._channel = (grpc.secure_channel(target, credentials, options=options) if credentials
                         else grpc.insecure_channel(target, options=options))
        self._stub = pb_grpc.InspectorStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self._shm_dir = os.path.abspath(shm_dir)
        if shared_memory is None:
            shared_memory = is_local_target(target) and usable_dir(self._shm_dir)
        self._probe = Probe(self._shm_dir) if shared_memory else None

    def __enter__(self) -> InspectorClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel and remove our probe file; arrays already returned stay valid."""
        self._channel.close()
        if self._probe is not None:
            self._probe.close()

    def _call(self, method, request, **kw):
        return method(request, metadata=self._metadata, timeout=kw.pop("timeout", self.timeout), **kw)

    def _results(self, chunks: Iterable[pb.ResultChunk], on_progress=None) -> StreamedResult:
        return assemble(chunks, on_progress, self._shm_dir if self._probe is not None else None)

    def _stream_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata of calls returning ResultChunks: the probe's path and token when offered."""
        return self._metadata + (self._probe.metadata() if self._probe is not None else ())

    def _result(self, method, request, on_progress=None) -> StreamedResult:
        chunks = method(request, metadata=self._stream_metadata(), timeout=self.timeout)
        return self._results(chunks, on_progress)

    # ---- models -------------------------------------------------------------------------
    def load_model(self, path_or_bytes: str | os.PathLike | bytes | None = None, *,
                   server_path: str | None = None, name: str | None = None,
                   preprocess: dict | None = None, providers: Sequence[str] = ()) -> ModelInfo:
        """Upload a local model file or bytes (streamed), or ask the server to read `server_path`."""
        spec = _preprocess(preprocess)
        if server_path is not None:
            if path_or_bytes is not None:
                raise ValueError("give either path_or_bytes or server_path, not both")
            req = pb.LoadModelRequest(server_path=str(server_path), name=name or "",
                                      preprocess=spec, providers=list(providers))
            return _model_info(self._call(self._stub.LoadModel, req))
        if path_or_bytes is None:
            raise ValueError("give a model path, its bytes, or server_path")
        if isinstance(path_or_bytes, bytes | bytearray):
            data: bytes | None = bytes(path_or_bytes)
            size = len(data)
        else:
            data, size = None, Path(path_or_bytes).stat().st_size

        def requests() -> Iterator[pb.UploadModelRequest]:
            yield pb.UploadModelRequest(header=pb.UploadHeader(
                name=name or "", preprocess=spec, providers=list(providers), size=size))
            if data is not None:
                for i in range(0, len(data), UPLOAD_CHUNK):
                    yield pb.UploadModelRequest(chunk=data[i:i + UPLOAD_CHUNK])
            else:
                with open(path_or_bytes, "rb") as f:
                    while block := f.read(UPLOAD_CHUNK):
                        yield pb.UploadModelRequest(chunk=block)

        return _model_info(self._stub.UploadModel(requests(), metadata=self._metadata, timeout=self.timeout))

    def list_models(self) -> list[ModelInfo]:
        return [_model_info(m) for m in self._call(self._stub.ListModels, pb.ListModelsRequest()).models]

    def quarantined_models(self) -> list[str]:
        """Store entries the server found corrupt on start and moved aside ("<id>-<time>")."""
        return list(self._call(self._stub.ListModels, pb.ListModelsRequest()).quarantined)

    def model_info(self, model: str) -> ModelInfo:
        return _model_info(self._call(self._stub.GetModelInfo, pb.ModelRef(model=model)))

    def unload_model(self, model: str) -> str:
        return self._call(self._stub.UnloadModel, pb.ModelRef(model=model)).id

    # ---- running ------------------------------------------------------------------------
    def infer(self, model: str, x: Input, *, preprocess: dict | None = None) -> dict[str, np.ndarray]:
        req = pb.InferRequest(model=model, input=_input(x, preprocess))
        return dict(self._result(self._stub.Infer, req).group("output"))

    def feature_maps(self, model: str, x: Input, layers: Sequence[str] | None = None, *,
                     float16: bool = False, preprocess: dict | None = None) -> dict[str, np.ndarray]:
        """Raw intermediate tensors keyed by tensor name (layers: tensor/node names, op types, "all")."""
        req = pb.FeatureMapsRequest(model=model, input=_input(x, preprocess), layers=_names(layers),
                                    raw=True, float16=float16)
        return dict(self._result(self._stub.FeatureMaps, req).group("feature"))

    def render_feature_maps(self, model: str, x: Input, layers: Sequence[str] | None = None, *,
                            cmap: str = "viridis", normalize: str = "channel",
                            channels: Sequence[int] | None = None, top_k: int | None = None,
                            image: int = 0, preprocess: dict | None = None) -> dict[str, bytes]:
        """One PNG channel grid per tensor, for image `image` of the batch."""
        res = self.feature_map_results(model, x, layers, png=True, raw=False, cmap=cmap,
                                       normalize=normalize, channels=channels, top_k=top_k,
                                       preprocess=preprocess)
        suffix = f"/{image}"
        return {k[:-len(suffix)]: v for k, v in res.group("png").items() if k.endswith(suffix)}

    def feature_stats(self, model: str, x: Input, layers: Sequence[str] | None = None, *,
                      preprocess: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Per-channel min/max/mean/std/zero_fraction per tensor."""
        res = self.feature_map_results(model, x, layers, stats=True, raw=False, preprocess=preprocess)
        out: dict[str, dict[str, np.ndarray]] = {}
        for key, value in res.group("stats").items():
            tensor, stat = key.rsplit("/", 1)
            out.setdefault(tensor, {})[stat] = value
        return out

    def feature_map_results(self, model: str, x: Input, layers: Sequence[str] | None = None, *,
                            raw: bool = True, png: bool = False, stats: bool = False,
                            float16: bool = False, cmap: str = "viridis", normalize: str = "channel",
                            channels: Sequence[int] | None = None, top_k: int | None = None,
                            preprocess: dict | None = None) -> StreamedResult:
        """Everything FeatureMaps can return in one call (groups "feature", "png", "stats")."""
        req = pb.FeatureMapsRequest(
            model=model, input=_input(x, preprocess), layers=_names(layers), raw=raw, png=png,
            stats=stats, float16=float16,
            render=pb.RenderOptions(cmap=cmap, normalize=normalize, channels=list(channels or ()),
                                    top_k=top_k or 0))
        return self._result(self._stub.FeatureMaps, req)

    def weights(self, model: str, layers: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Conv/Gemm weights and biases keyed by initializer name (layers: node or tensor names)."""
        req = pb.WeightsRequest(model=model, layers=_names(layers), raw=True)
        return dict(self._result(self._stub.Weights, req).group("weight"))

    def render_weights(self, model: str, layers: Sequence[str] | None = None, *, mode: str = "auto",
                       cmap: str = "RdBu_r", histogram: bool = False) -> dict[str, bytes]:
        """Filter grids (or weight histograms) as PNG, keyed by initializer name."""
        req = pb.WeightsRequest(model=model, layers=_names(layers), png=not histogram,
                                histogram=histogram, mode=mode, cmap=cmap)
        return dict(self._result(self._stub.Weights, req).group("histogram" if histogram else "png"))

    def weight_stats(self, model: str, layers: Sequence[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
        req = pb.WeightsRequest(model=model, layers=_names(layers), stats=True)
        out: dict[str, dict[str, np.ndarray]] = {}
        for key, value in self._result(self._stub.Weights, req).group("stats").items():
            name, stat = key.rsplit("/", 1)
            out.setdefault(name, {})[stat] = value
        return out

    def gradients(self, model: str, x: Input, wrt: Sequence[str] | None = None,
                  target: TargetSpec = None, policy: str = "standard", *,
                  preprocess: dict | None = None) -> dict[str, np.ndarray]:
        """d(target)/d(wrt) per wrt tensor (default: the model input; target default: top-1)."""
        req = pb.GradientsRequest(model=model, input=_input(x, preprocess), wrt=_names(wrt),
                                  policy=policy)
        if target is not None:
            req.target.CopyFrom(_target(target))
        return dict(self._result(self._stub.Gradients, req).group("gradient"))

    def explain(self, model: str, x: Input, method: str = "gradcam", target: TargetSpec = None,
                layer: str | Sequence[str] | None = None, *, overlay_cmap: str = "jet",
                overlay_alpha: float = 0.5, preprocess: dict | None = None, **params: Any) -> Explanation:
        """Run an attribution method (see `methods()`); params are the method's keyword arguments."""
        req = pb.ExplainRequest(model=model, input=_input(x, preprocess), method=method,
                                layers=_names(layer), params=_struct(params),
                                overlay=pb.OverlayOptions(cmap=overlay_cmap, alpha=overlay_alpha))
        if target is not None:
            req.target.CopyFrom(_target(target))
        res = self._result(self._stub.Explain, req)
        info = res.info
        overlays = res.group("overlay")
        return Explanation(
            method=info.get("method", method), heatmap=res.group("heatmap")["heatmap"],
            layer_heatmap=res.group("layer_heatmap").get("layer_heatmap"),
            attribution=res.group("attribution").get("attribution"),
            overlay_png=[overlays[k] for k in sorted(overlays, key=int)],
            score=list(info.get("score", [])), score_after=info.get("score_after"),
            layer=list(info.get("layers", [])), target=list(info.get("targets", [])),
            params=dict(info.get("params", {})), extras=dict(res.group("extra")), warnings=res.warnings)

    def evaluate(self, model: str, x: Input, explanation: Explanation | np.ndarray,
                 metrics: Sequence[str] = ("deletion", "insertion"), target: TargetSpec = None, *,
                 preprocess: dict | None = None, **params: Any) -> dict[str, np.ndarray]:
        """Faithfulness metrics of a heatmap: deletion/insertion AUC, ROAD, drop/increase, pointing game."""
        heat = explanation.heatmap if isinstance(explanation, Explanation) else np.asarray(explanation)
        req = pb.EvaluateRequest(model=model, input=_input(x, preprocess), heatmap=_tensor(heat),
                                 metrics=list(metrics), params=_struct(params))
        if target is None and isinstance(explanation, Explanation):
            target = _target_from_names(explanation.target)
        if target is not None:
            req.target.CopyFrom(_target(target))
        return dict(self._result(self._stub.Evaluate, req).group("metric"))

    def methods(self) -> list[dict]:
        resp = self._call(self._stub.ListMethods, pb.ListMethodsRequest())
        return [{"name": m.name, "doc": m.doc, "uses_gradients": m.uses_gradients,
                 "defaults": json_format.MessageToDict(m.defaults)} for m in resp.methods]

    def maximize(self, model: str, layer: str, channels: Sequence[int], steps: int = 256,
                 objective: str = "channel", *, preview_every: int = 0,
                 on_progress: Callable[[Progress], None] | None = None, **params: Any) -> Maximization:
        """Activation maximization; progress events go to on_progress while it runs."""
        req = pb.MaximizeRequest(model=model, layer=layer, channels=[int(c) for c in channels],
                                 steps=steps, objective=objective, params=_struct(params),
                                 preview_every=preview_every)
        res = self._result(self._stub.Maximize, req, on_progress)
        pngs = res.group("png")
        return Maximization(inputs=res.group("inputs")["inputs"],
                            pngs=[pngs[k] for k in sorted(pngs, key=int)],
                            objective=res.group("objective")["objective"],
                            initial_objective=res.group("objective")["initial_objective"],
                            final_objective=res.group("objective")["final_objective"], info=res.info)

    def audit(self, model: str, images: Iterable[bytes | str | os.PathLike | np.ndarray],
              layers: Sequence[str] | None = None, *, batch_size: int = 8, labels: Sequence[int] | None = None,
              preprocess: dict | None = None, on_progress: Callable[[Progress], None] | None = None,
              resume_state: bytes | None = None, checkpoint_every: int = 0) -> dict:
        """Aggregated activation statistics over many images (never downloads feature maps).

        Images stream in batches; `on_progress` sees one event per batch, carrying a
        "checkpoint" preview (partial state) every `checkpoint_every` batches; pass the latest
        one as `resume_state` with the remaining images to continue an interrupted audit.
        """
        import json

        def requests() -> Iterator[pb.AuditRequest]:
            yield pb.AuditRequest(header=pb.AuditHeader(
                model=model, layers=_names(layers), preprocess=_preprocess(preprocess),
                labels=list(labels or ()), resume_state=resume_state or b"",
                checkpoint_every=checkpoint_every, columnar=True))
            batch: list = []
            for item in images:
                if isinstance(item, np.ndarray):
                    yield pb.AuditRequest(batch=_input(item, None))
                    continue
                batch.append(item)
                if len(batch) == batch_size:
                    yield pb.AuditRequest(batch=_input(batch, None))
                    batch = []
            if batch:
                yield pb.AuditRequest(batch=_input(batch, None))

        res = self._results(self._stub.AuditStats(requests(), metadata=self._stream_metadata(),
                                                  timeout=self.timeout), on_progress)
        parts = res.group("audit")
        return _audit_from_columns(json.loads(parts["audit"]), parts.get("channel_stats"), parts.get("channel_flags"))


# ---- conversions ----------------------------------------------------------------------------
_CHANNEL_FIELDS = ("mean", "std", "min", "max", "zero_fraction", "active_fraction", "saturation_fraction",
                   "nonfinite_fraction", "p1", "p50", "p99")  # rows of "channel_stats" (the .proto)
_FLAGS = ("dead", "rarely_active", "saturated", "range_outlier")  # bit i of "channel_flags"
_FLAG_LISTS = [[f for i, f in enumerate(_FLAGS) if b >> i & 1] for b in range(1 << len(_FLAGS))]


def _json_numbers(values: np.ndarray) -> list[float | None]:
    """Floats as JSON has them: None where not finite."""
    if np.isfinite(values).all():
        return values.tolist()
    return [v if math.isfinite(v) else None for v in values.tolist()]


def _audit_from_columns(audit: dict, columns: np.ndarray | None, flags: np.ndarray | None) -> dict:
    """The report.json form of a columnar AuditStats answer: every layer's "columns" becomes
    its list of channel objects (a server that ignores `columnar` sent them already)."""
    for entry in audit["layers"].values():
        spec = entry.pop("columns", None)
        if spec is None:
            continue
        lo, hi = spec["offset"], spec["offset"] + spec["count"]
        values = [_json_numbers(columns[_CHANNEL_FIELDS.index(f), lo:hi]) for f in spec["fields"]]
        flag_lists = [list(_FLAG_LISTS[b]) for b in flags[lo:hi].tolist()]
        keys = ("index", *spec["fields"], "flags")
        entry["channels"] = [dict(zip(keys, row, strict=True))
                             for row in zip(range(hi - lo), *values, flag_lists, strict=True)]
    return audit


def _names(names: str | Sequence[str] | None) -> list[str]:
    if names is None:
        return []
    return [names] if isinstance(names, str) else [str(n) for n in names]


def _tensor(arr: np.ndarray) -> pb.Tensor:
    arr = np.asarray(arr)
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return pb.Tensor(dtype=arr.dtype.name, shape=list(arr.shape), data=arr.tobytes())


def _read(item: bytes | str | os.PathLike) -> bytes:
    return bytes(item) if isinstance(item, bytes | bytearray) else Path(item).read_bytes()


def _input(x: Input, preprocess: dict | None) -> pb.Input:
    msg = pb.Input()
    if isinstance(x, np.ndarray):
        msg.tensor.CopyFrom(_tensor(x))
    elif isinstance(x, bytes | bytearray | str | os.PathLike):
        msg.images.images.append(_read(x))
    else:
        msg.images.images.extend(_read(i) for i in x)
    if preprocess:
        msg.preprocess.CopyFrom(_preprocess(preprocess))
    return msg


def _preprocess(spec: dict | None) -> pb.Preprocess:
    msg = pb.Preprocess()
    if not spec:
        return msg
    unknown = set(spec) - {"resize", "crop", "scale", "mean", "std", "channel_order", "layout", "dtype"}
    if unknown:
        raise ValueError(f"unknown preprocess fields: {sorted(unknown)}")
    if spec.get("resize") is not None:
        r = spec["resize"]
        msg.resize.extend([int(r)] if isinstance(r, int) else [int(v) for v in r])
    if spec.get("crop") is not None:
        c = spec["crop"]
        msg.crop.extend([int(c), int(c)] if isinstance(c, int) else [int(v) for v in c])
    if spec.get("scale") is not None:
        msg.scale = float(spec["scale"])
    msg.mean.extend(float(v) for v in spec.get("mean") or ())
    msg.std.extend(float(v) for v in spec.get("std") or ())
    for key in ("channel_order", "layout", "dtype"):
        if spec.get(key):
            setattr(msg, key, str(spec[key]))
    return msg


def _target(target: TargetSpec) -> pb.Target:
    msg = pb.Target()
    if isinstance(target, int | np.integer):
        msg.index.append(int(target))
    elif isinstance(target, np.ndarray):
        msg.seed.CopyFrom(_tensor(target))
    elif isinstance(target, dict):
        unknown = set(target) - {"tensor", "index", "classes", "channel", "box", "mask", "seed"}
        if unknown:
            raise ValueError(f"unknown target fields: {sorted(unknown)}")
        msg.tensor = target.get("tensor") or ""
        index = target.get("index")
        if index is not None:
            msg.index.extend([int(index)] if isinstance(index, int) else [int(i) for i in index])
        msg.classes.extend(int(c) for c in target.get("classes") or ())
        if target.get("channel") is not None:
            msg.channel = int(target["channel"])
        msg.box.extend(int(v) for v in target.get("box") or ())
        if target.get("mask") is not None:
            msg.mask.CopyFrom(_tensor(np.asarray(target["mask"])))
        if target.get("seed") is not None:
            msg.seed.CopyFrom(_tensor(np.asarray(target["seed"])))
    else:
        msg.classes.extend(int(c) for c in target)
    return msg


def _target_from_names(names: Sequence[str]) -> TargetSpec:
    """Recover a class target ("logits[281]") from an explanation, when all images share it."""
    if not names or len(set(names)) != 1 or not names[0].endswith("]") or "[" not in names[0]:
        return None
    tensor, index = names[0][:-1].split("[", 1)
    try:
        return {"tensor": tensor, "index": [int(i) for i in index.split(",")]}
    except ValueError:
        return None


def _struct(params: dict) -> struct_pb2.Struct:
    def plain(v):
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, tuple):
            return list(v)
        return v

    msg = struct_pb2.Struct()
    msg.update({k: plain(v) for k, v in params.items()})
    return msg


def _tensor_info(t: pb.TensorInfo) -> TensorInfo:
    shape = tuple(d.size if d.WhichOneof("value") == "size" else
                  (d.param if d.WhichOneof("value") == "param" else None) for d in t.shape)
    return TensorInfo(t.name, t.dtype or None, shape if t.rank_known else None)


def _model_info(m: pb.ModelInfo) -> ModelInfo:
    return ModelInfo(
        id=m.id, name=m.name or None, size_bytes=m.size_bytes,
        inputs=tuple(_tensor_info(t) for t in m.inputs), outputs=tuple(_tensor_info(t) for t in m.outputs),
        opsets=dict(m.opsets), producer=m.producer,
        layers=tuple(LayerInfo(layer.name, layer.op_type, tuple(layer.inputs),
                               tuple(_tensor_info(t) for t in layer.outputs), layer.parameter_count,
                               layer.has_weights, tuple(layer.weight_names)) for layer in m.layers),
        preprocess=json_format.MessageToDict(m.preprocess, preserving_proto_field_name=True),
        differentiable=m.differentiable, blocking_ops=tuple(m.blocking_ops), created=m.created,
        providers=tuple(m.providers))
