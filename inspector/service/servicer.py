"""The gRPC servicer: each RPC translates its request, calls the core, streams the result."""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Iterator

import grpc

from inspector import errors
from inspector.core import Inspector
from inspector.runtime.cancellation import cancellable
from inspector.service import convert, status
from inspector.service.metrics import current_request_id
from inspector.service.shared_memory import SharedMemory
from inspector.service.streaming import progress_message, result_messages
from inspector.v1 import inspector_pb2 as pb
from inspector.v1 import inspector_pb2_grpc as pb_grpc

log = logging.getLogger("inspector.service")

_CODES = {
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "CANCELLED": grpc.StatusCode.CANCELLED,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,  # the shared store cannot be reached
}


def _cancelled(context: grpc.ServicerContext) -> bool:
    remaining = context.time_remaining()
    return not context.is_active() or (remaining is not None and remaining <= 0)


def _abort(context: grpc.ServicerContext, exc: BaseException, rpc: str, request_id: str):
    if isinstance(exc, errors.InspectorError):
        code = _CODES.get(exc.code, grpc.StatusCode.INTERNAL)
        if code is grpc.StatusCode.CANCELLED and context.time_remaining() is not None \
                and context.time_remaining() <= 0:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        log.info("%s [%s] %s: %s", rpc, request_id, code.name, exc.message)
        status.abort(context, code, exc.message, field=exc.field, reason=type(exc).__name__)
    log.exception("%s [%s] failed unexpectedly", rpc, request_id)
    status.abort(context, grpc.StatusCode.INTERNAL,
                 f"internal error (request id {request_id}); the server log has details", reason="Internal")


def handled(rpc):
    """Run an RPC under the call's cancellation check; map domain errors to status codes."""

    @functools.wraps(rpc)
    def unary(self, request, context):
        request_id = current_request_id() or uuid.uuid4().hex[:12]
        try:
            with cancellable(lambda: _cancelled(context)):
                return rpc(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status, the server lives on
            _abort(context, exc, rpc.__name__, request_id)

    @functools.wraps(rpc)
    def streaming(self, request, context):
        request_id = current_request_id() or uuid.uuid4().hex[:12]
        try:
            with cancellable(lambda: _cancelled(context)):
                yield from rpc(self, request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, exc, rpc.__name__, request_id)

    return streaming if inspect.isgeneratorfunction(rpc) else unary


class InspectorServicer(pb_grpc.InspectorServicer):
    def __init__(self, inspector: Inspector, shared_memory: SharedMemory | None = None) -> None:
        self.core = inspector
        self.limit = inspector.config.max_message_bytes
        self.shm = shared_memory  # None: results always stream

    def _stream(self, result, context: grpc.ServicerContext) -> Iterator[pb.ResultChunk]:
        shm = self.shm if self.shm is not None and self.shm.usable(context) else None
        return result_messages(result.to_wire(), self.limit, shm=shm)

    # ---- models -------------------------------------------------------------------------
    @handled
    def UploadModel(self, request_iterator, context):
        header = _first_header(request_iterator, "UploadModel", "UploadHeader")
        if header.size and header.size > self.core.config.max_upload_bytes:
            raise errors.ResourceExhausted(
                f"model of {header.size} bytes exceeds the upload limit of "
                f"{self.core.config.max_upload_bytes} bytes")

        def chunks():
            for msg in request_iterator:
                if msg.WhichOneof("part") != "chunk":
                    raise errors.InvalidArgument("only byte chunks may follow the UploadHeader",
                                                 field="chunk")
                yield msg.chunk

        info = self.core.upload(chunks(), name=header.name or None,
                                preprocess=convert.preprocess_to_dict(header.preprocess),
                                providers=list(header.providers), replace=header.replace)
        return convert.model_info_to_proto(info)

    @handled
    def LoadModel(self, request, context):
        info = self.core.load_path(request.server_path, name=request.name or None,
                                   preprocess=convert.preprocess_to_dict(request.preprocess),
                                   providers=list(request.providers), replace=request.replace)
        return convert.model_info_to_proto(info)

    @handled
    def ListModels(self, request, context):
        return pb.ListModelsResponse(models=[convert.model_info_to_proto(i) for i in self.core.list_models()],
                                     quarantined=self.core.quarantined())

    @handled
    def GetModelInfo(self, request, context):
        return convert.model_info_to_proto(self.core.model_info(_model(request)))

    @handled
    def UnloadModel(self, request, context):
        return pb.UnloadModelResponse(id=self.core.unload(_model(request)))

    # ---- inspection: unset fields are None (the owner's default) ---------------------------
    @handled
    def Infer(self, request, context):
        yield from self._stream(self.core.infer(_model(request), convert.input_to_domain(request.input)), context)

    @handled
    def FeatureMaps(self, request, context):
        r = request.render
        raw = request.raw or not (request.png or request.stats)
        yield from self._stream(self.core.feature_maps(
            _model(request), convert.input_to_domain(request.input), list(request.layers) or None,
            raw=raw, png=request.png, stats=request.stats, float16=request.float16, cmap=r.cmap or None,
            normalize=r.normalize or None, channels=[int(c) for c in r.channels] or None,
            top_k=r.top_k or None, label=r.label or None), context)

    @handled
    def Weights(self, request, context):
        raw = request.raw or not (request.png or request.histogram or request.stats)
        yield from self._stream(self.core.weights(
            _model(request), list(request.layers) or None, raw=raw, png=request.png,
            histogram=request.histogram, stats=request.stats, mode=request.mode or None,
            cmap=request.cmap or None), context)

    @handled
    def Gradients(self, request, context):
        yield from self._stream(self.core.gradients(
            _model(request), convert.input_to_domain(request.input), list(request.wrt) or None,
            _target(request), request.policy or None), context)

    @handled
    def Explain(self, request, context):
        o = request.overlay
        yield from self._stream(self.core.explain(
            _model(request), convert.input_to_domain(request.input), request.method or None,
            _target(request), list(request.layers) or None, convert.struct_to_dict(request.params),
            overlay=not o.skip, cmap=o.cmap or None, alpha=o.alpha if o.HasField("alpha") else None), context)

    @handled
    def Evaluate(self, request, context):
        yield from self._stream(self.core.evaluate(
            _model(request), convert.input_to_domain(request.input),
            convert.tensor_to_numpy(request.heatmap, "heatmap"), list(request.metrics) or None,
            _target(request), convert.struct_to_dict(request.params)), context)

    @handled
    def ListMethods(self, request, context):
        return pb.ListMethodsResponse(methods=[
            pb.MethodInfo(name=m["name"], doc=m["doc"], uses_gradients=m["uses_gradients"],
                          defaults=convert.dict_to_struct(m["defaults"])) for m in self.core.methods()])

    @handled
    def Maximize(self, request, context):
        run = self.core.maximize_stream(
            _model(request), request.layer or None, [int(c) for c in request.channels],
            request.steps or None, request.objective or None, preview_every=request.preview_every or None,
            params=convert.struct_to_dict(request.params))
        yield from self._drive(run, context)

    @handled
    def AuditStats(self, request_iterator, context):
        h = _first_header(request_iterator, "AuditStats", "AuditHeader")
        batches = (convert.input_to_domain(m.batch) for m in request_iterator)
        run = self.core.audit_stream(_model(h), batches, list(h.layers) or None,
                                     preprocess=convert.preprocess_to_dict(h.preprocess),
                                     labels=list(h.labels) or None, resume_state=h.resume_state or None,
                                     checkpoint_every=h.checkpoint_every, columnar=h.columnar)
        yield from self._drive(run, context)

    def _drive(self, run, context: grpc.ServicerContext):
        """Stream a generator's progress events, then its returned result."""
        try:
            while True:
                yield from progress_message(next(run), self.limit)
        except StopIteration as stop:
            yield from self._stream(stop.value, context)
        finally:
            run.close()


def _target(request):
    return convert.target_to_domain(request.target) if request.HasField("target") else None


def _first_header(request_iterator, rpc: str, kind: str):
    """The header that must open a client stream, or INVALID_ARGUMENT naming it."""
    first = next(request_iterator, None)
    if first is None or first.WhichOneof("part") != "header":
        raise errors.InvalidArgument(f"the first {rpc} message must be an {kind}", field="header")
    return first.header


def _model(request) -> str:
    if not request.model:
        raise errors.InvalidArgument("model is empty: give a model id, id prefix or name", field="model")
    return request.model
