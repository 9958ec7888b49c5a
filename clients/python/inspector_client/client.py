"""InspectorClient: the thin Python client of the inspector gRPC service."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format, struct_pb2

from .assemble import assemble
from .preprocess import preprocess_from_message, preprocess_into_message
from .shared_memory import DEFAULT_DIR, Probe, is_local_target, usable_dir
from .types import (
    AuditReport,
    Evaluation,
    Explanation,
    FeatureMaps,
    Gradients,
    Inference,
    LayerInfo,
    Maximization,
    ModelInfo,
    Progress,
    TensorInfo,
    Weights,
    Wire,
    target_from_names,
)
from .v1 import inspector_pb2 as pb
from .v1 import inspector_pb2_grpc as pb_grpc

UPLOAD_CHUNK = 1 << 20
RETRIES = 3  # a read-only call asked again when its replica goes away (several targets only)
_IDEMPOTENT = ("ListModels", "GetModelInfo", "ListMethods", "Infer", "FeatureMaps", "Weights", "Gradients",
               "Explain", "Evaluate", "Maximize")
# round_robin over every address; read-only calls retried on UNAVAILABLE before any answer arrived
SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{"name": [{"service": "inspector.v1.Inspector", "method": m} for m in _IDEMPOTENT],
                      "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "1s",
                                      "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})


def channel_target(target: str) -> tuple[str, bool]:
    """("ipv4:a:1,b:2", True) for "hostA:1,hostB:2" (each name resolved to its addresses), the
    target as it is otherwise ("dns:///name:port" balances over every address the name has)."""
    parts = [t.strip() for t in target.split(",") if t.strip()]
    if len(parts) < 2:
        return target, target.startswith("dns:")
    import socket

    addresses = []
    for part in parts:
        host, _, port = part.rpartition(":")
        host = host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot resolve the target {part!r}: {exc}") from None
        addresses += [f"[{i[4][0]}]:{port}" if ":" in i[4][0] else f"{i[4][0]}:{port}" for i in infos]
    family = "ipv6" if all(a.startswith("[") for a in addresses) else "ipv4"
    if family == "ipv4":
        addresses = [a for a in addresses if not a.startswith("[")]
    return f"{family}:{','.join(dict.fromkeys(addresses))}", True
Input = np.ndarray | bytes | str | os.PathLike | Sequence[bytes | str | os.PathLike | np.ndarray] | dict
TargetSpec = int | Sequence[int] | dict | np.ndarray | None


class InspectorClient:
    """Talk to an inspector server at `target` ("host:port"), or to replicas: "host1:port,host2:port"
    or "dns:///name:port", balanced per call (round_robin) with read-only calls retried elsewhere
    when a replica goes away.

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
        target, several = channel_target(target)
        options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                   ("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1)]
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
        if shared_memory is None:  # several replicas: results stream (a replica's file is its own)
            shared_memory = not several and is_local_target(target) and usable_dir(self._shm_dir)
        self.retries = RETRIES if several else 0
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

    def _results(self, chunks: Iterable[pb.ResultChunk], on_progress=None) -> Wire:
        return assemble(chunks, on_progress, self._shm_dir if self._probe is not None else None)

    def _stream_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata of calls returning ResultChunks: the probe's path and token when offered."""
        return self._metadata + (self._probe.metadata() if self._probe is not None else ())

    def _again(self, attempt: Callable[[], Any]) -> Any:
        """attempt(); with several replicas, again while it fails UNAVAILABLE (its replica went away
        or was going away), up to self.retries times, the channel choosing a replica each time.
        Only for calls that are safe to make twice: reads, and uploads (content-addressed)."""
        for tries_left in range(self.retries, -1, -1):
            try:
                return attempt()
            except grpc.RpcError as err:
                if not tries_left or err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
        raise AssertionError("unreachable")

    def _result(self, method, request, on_progress=None) -> Wire:
        """A streamed result; with several replicas, a call whose replica went away mid-stream is
        asked again (these calls only read, so asking twice is safe): progress starts over."""
        return self._again(lambda: self._results(
            method(request, metadata=self._stream_metadata(), timeout=self.timeout), on_progress))

    # ---- models -------------------------------------------------------------------------
    def load_model(self, path_or_bytes: str | os.PathLike | bytes | None = None, *,
                   server_path: str | None = None, name: str | None = None,
                   preprocess: dict | None = None, providers: Sequence[str] = (),
                   replace: bool = False, on_progress: Callable[[Progress], None] | None = None) -> ModelInfo:
        """Upload a local model file or bytes (streamed), or ask the server to read `server_path`.

        `name` is an alias with its own preprocess spec and providers; the same bytes may carry
        several. A name another model holds moves only with `replace=True`. `on_progress` sees
        the bytes handed to gRPC after each chunk (Progress.step of .total), called from the
        thread gRPC sends them from.

        With several replicas, an upload whose replica went away is sent again, whole, from the
        start (the file opened again; progress starts over), the channel choosing another
        replica: storing the same bytes under the same name twice is harmless."""
        spec = _preprocess(preprocess)
        if server_path is not None:
            if path_or_bytes is not None:
                raise ValueError("give either path_or_bytes or server_path, not both")
            req = pb.LoadModelRequest(server_path=str(server_path), name=name or "",
                                      preprocess=spec, providers=list(providers), replace=replace)
            return _model_info(self._again(lambda: self._call(self._stub.LoadModel, req)))
        if path_or_bytes is None:
            raise ValueError("give a model path, its bytes, or server_path")
        if isinstance(path_or_bytes, bytes | bytearray):
            data: bytes | None = bytes(path_or_bytes)
            size = len(data)
        else:
            data, size = None, Path(path_or_bytes).stat().st_size
        header = pb.UploadModelRequest(header=pb.UploadHeader(
            name=name or "", preprocess=spec, providers=list(providers), size=size, replace=replace))

        def blocks() -> Iterator[bytes]:
            if data is not None:
                for i in range(0, len(data), UPLOAD_CHUNK):
                    yield data[i:i + UPLOAD_CHUNK]
            else:
                with open(path_or_bytes, "rb") as f:
                    while block := f.read(UPLOAD_CHUNK):
                        yield block

        def requests() -> Iterator[pb.UploadModelRequest]:  # a fresh one for every attempt
            yield header
            sent = 0
            for block in blocks():
                yield pb.UploadModelRequest(chunk=block)
                sent += len(block)
                if on_progress is not None:
                    on_progress(Progress(step=sent, total=size, message="upload"))

        return _model_info(self._again(lambda: self._stub.UploadModel(
            requests(), metadata=self._metadata, timeout=self.timeout)))

    def list_models(self) -> list[ModelInfo]:
        return [_model_info(m) for m in self._call(self._stub.ListModels, pb.ListModelsRequest()).models]

    def quarantined_models(self) -> list[str]:
        """Store entries the server found corrupt on start and moved aside ("<id>-<time>")."""
        return list(self._call(self._stub.ListModels, pb.ListModelsRequest()).quarantined)

    def model_info(self, model: str) -> ModelInfo:
        return _model_info(self._call(self._stub.GetModelInfo, pb.ModelRef(model=model)))

    def unload_model(self, model: str) -> str:
        return self._call(self._stub.UnloadModel, pb.ModelRef(model=model)).id

    # ---- running: arguments left at None mean the server's default ------------------------
    def infer(self, model: str, x: Input, *, preprocess: dict | None = None) -> Inference:
        """The model's outputs by name (reads as a dict)."""
        req = pb.InferRequest(model=model, input=_input(x, preprocess))
        return Inference.from_wire(self._result(self._stub.Infer, req))

    def feature_maps(self, model: str, x: Input, layers: Sequence[str] | None = None, *,
                     float16: bool = False, preprocess: dict | None = None) -> FeatureMaps:
        """Raw intermediate tensors keyed by tensor name (layers: tensor/node names, op types, "all")."""
        return self.feature_map_results(model, x, layers, float16=float16, preprocess=preprocess)

    def render_feature_maps(self, model: str, x: Input, layers: Sequence[str] | None = None, *,
                            cmap: str | None = None, normalize: str | None = None,
                            channels: Sequence[int] | None = None, top_k: int | None = None,
                            image: int = 0, label: bool = False, preprocess: dict | None = None) -> dict[str, bytes]:
        """One PNG channel grid per tensor, for image `image` of the batch (`label`: channel
        indices on the tiles; feature_map_results(...).channels says which channels are shown)."""
        res = self.feature_map_results(model, x, layers, png=True, raw=False, cmap=cmap,
                                       normalize=normalize, channels=channels, top_k=top_k, label=label,
                                       preprocess=preprocess)
        return {name: pngs[image] for name, pngs in res.pngs.items() if image < len(pngs)}

    def feature_stats(self, model: str, x: Input, layers: Sequence[str] | None = None, *,
                      preprocess: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Per-channel min/max/mean/std/zero_fraction per tensor."""
        return self.feature_map_results(model, x, layers, stats=True, raw=False, preprocess=preprocess).stats

    def feature_map_results(self, model: str, x: Input, layers: Sequence[str] | None = None, *,
                            raw: bool = True, png: bool = False, stats: bool = False,
                            float16: bool = False, cmap: str | None = None, normalize: str | None = None,
                            channels: Sequence[int] | None = None, top_k: int | None = None,
                            label: bool = False, preprocess: dict | None = None) -> FeatureMaps:
        """Everything FeatureMaps can return in one call (tensors, pngs, stats)."""
        req = pb.FeatureMapsRequest(
            model=model, input=_input(x, preprocess), layers=_names(layers), raw=raw, png=png,
            stats=stats, float16=float16,
            render=pb.RenderOptions(cmap=cmap or "", normalize=normalize or "", channels=list(channels or ()),
                                    top_k=top_k or 0, label=label))
        return FeatureMaps.from_wire(self._result(self._stub.FeatureMaps, req))

    def weights(self, model: str, layers: Sequence[str] | None = None) -> Weights:
        """Conv/Gemm weights and biases keyed by initializer name (layers: node or tensor names)."""
        return self.weight_results(model, layers)

    def render_weights(self, model: str, layers: Sequence[str] | None = None, *, mode: str | None = None,
                       cmap: str | None = None, histogram: bool = False) -> dict[str, bytes]:
        """Filter grids (or weight histograms) as PNG, keyed by initializer name."""
        res = self.weight_results(model, layers, raw=False, png=not histogram, histogram=histogram,
                                  mode=mode, cmap=cmap)
        return res.histograms if histogram else res.pngs

    def weight_stats(self, model: str, layers: Sequence[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
        return self.weight_results(model, layers, raw=False, stats=True).stats

    def weight_results(self, model: str, layers: Sequence[str] | None = None, *, raw: bool = True,
                       png: bool = False, histogram: bool = False, stats: bool = False,
                       mode: str | None = None, cmap: str | None = None) -> Weights:
        """Everything Weights can return in one call (tensors, pngs, histograms, stats)."""
        req = pb.WeightsRequest(model=model, layers=_names(layers), raw=raw, png=png, histogram=histogram,
                                stats=stats, mode=mode or "", cmap=cmap or "")
        return Weights.from_wire(self._result(self._stub.Weights, req))

    def gradients(self, model: str, x: Input, wrt: Sequence[str] | None = None,
                  target: TargetSpec = None, policy: str | None = None, *,
                  preprocess: dict | None = None) -> Gradients:
        """d(target)/d(wrt) per wrt tensor (default: the model input; target default: top-1)."""
        req = pb.GradientsRequest(model=model, input=_input(x, preprocess), wrt=_names(wrt),
                                  policy=policy or "")
        if target is not None:
            req.target.CopyFrom(_target(target))
        return Gradients.from_wire(self._result(self._stub.Gradients, req))

    def explain(self, model: str, x: Input, method: str | None = None, target: TargetSpec = None,
                layer: str | Sequence[str] | None = None, *, overlay_cmap: str | None = None,
                overlay_alpha: float | None = None, preprocess: dict | None = None, **params: Any) -> Explanation:
        """Run an attribution method (see `methods()`); params are the method's keyword arguments."""
        overlay = pb.OverlayOptions(cmap=overlay_cmap or "")
        if overlay_alpha is not None:
            overlay.alpha = overlay_alpha
        req = pb.ExplainRequest(model=model, input=_input(x, preprocess), method=method or "",
                                layers=_names(layer), params=_struct(params), overlay=overlay)
        if target is not None:
            req.target.CopyFrom(_target(target))
        return Explanation.from_wire(self._result(self._stub.Explain, req))

    def evaluate(self, model: str, x: Input, explanation: Explanation | np.ndarray,
                 metrics: Sequence[str] | None = None, target: TargetSpec = None, *,
                 preprocess: dict | None = None, **params: Any) -> Evaluation:
        """Faithfulness metrics of a heatmap: deletion/insertion AUC, ROAD, drop/increase, pointing game."""
        heat = explanation.heatmap if isinstance(explanation, Explanation) else np.asarray(explanation)
        req = pb.EvaluateRequest(model=model, input=_input(x, preprocess), heatmap=_tensor(heat),
                                 metrics=list(metrics or ()), params=_struct(params))
        if target is None and isinstance(explanation, Explanation):
            target = target_from_names(explanation.targets)
        if target is not None:
            req.target.CopyFrom(_target(target))
        return Evaluation.from_wire(self._result(self._stub.Evaluate, req))

    def methods(self) -> list[dict]:
        resp = self._call(self._stub.ListMethods, pb.ListMethodsRequest())
        return [{"name": m.name, "doc": m.doc, "uses_gradients": m.uses_gradients,
                 "defaults": json_format.MessageToDict(m.defaults)} for m in resp.methods]

    def maximize(self, model: str, layer: str | None, channels: Sequence[int], steps: int | None = None,
                 objective: str | None = None, *, preview_every: int | None = None,
                 on_progress: Callable[[Progress], None] | None = None, **params: Any) -> Maximization:
        """Activation maximization; progress events go to on_progress while it runs."""
        req = pb.MaximizeRequest(model=model, layer=layer or "", channels=[int(c) for c in channels],
                                 steps=steps or 0, objective=objective or "", params=_struct(params),
                                 preview_every=preview_every or 0)
        return Maximization.from_wire(self._result(self._stub.Maximize, req, on_progress))

    def audit(self, model: str, images: Iterable[bytes | str | os.PathLike | np.ndarray],
              layers: Sequence[str] | None = None, *, batch_size: int = 8, labels: Sequence[int] | None = None,
              preprocess: dict | None = None, on_progress: Callable[[Progress], None] | None = None,
              resume_state: bytes | None = None, checkpoint_every: int = 0) -> AuditReport:
        """Aggregated activation statistics over many images (never downloads feature maps); the
        report reads as the report.json dict.

        Images stream in batches of `batch_size` (an array is a batch of its own); `on_progress`
        sees one event per batch, carrying a checkpoint (`.checkpoint`, partial state) every
        `checkpoint_every` batches; pass the latest one as `resume_state` with the remaining
        images to continue an interrupted audit.
        """

        def requests() -> Iterator[pb.AuditRequest]:
            yield pb.AuditRequest(header=pb.AuditHeader(
                model=model, layers=_names(layers), preprocess=_preprocess(preprocess),
                labels=list(labels or ()), resume_state=resume_state or b"",
                checkpoint_every=checkpoint_every, columnar=True))
            batch: list = []
            for item in images:
                if isinstance(item, np.ndarray | dict):  # a batch of its own (a dict: inputs by name)
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
        return AuditReport.from_wire(res)


# ---- conversions ----------------------------------------------------------------------------
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
    if isinstance(x, dict):  # every input by name: the server knows which is the image
        for name, value in x.items():
            msg.named[str(name)].CopyFrom(_input(value, None))
        if preprocess:
            msg.preprocess.CopyFrom(_preprocess(preprocess))
        return msg
    if isinstance(x, list | tuple) and x and all(isinstance(i, np.ndarray) for i in x):
        x = np.stack(x)
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
    return preprocess_into_message(spec, pb.Preprocess())


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
        preprocess=preprocess_from_message(m.preprocess),
        differentiable=m.differentiable, blocking_ops=tuple(m.blocking_ops), created=m.created,
        providers=tuple(m.providers), names=tuple(m.names))
