"""inference.GRPCInferenceService (the Open Inference Protocol over gRPC) on the inspector's
gRPC server: proto <-> oip.py. Answers carry outputs as raw_output_contents, as Triton's do.

Errors: a user's mistake is INVALID_ARGUMENT naming the input or output, an unknown model
NOT_FOUND, an unloaded one UNAVAILABLE; INTERNAL only for the server's own faults.
"""

from __future__ import annotations

import functools
import logging
import uuid

import grpc

from inspector import errors
from inspector.core import Inspector
from inspector.kserve import grpc_service_pb2 as pb
from inspector.kserve import grpc_service_pb2_grpc as pb_grpc
from inspector.kserve.oip import Call, ModelStats, Oip, TensorIn, from_raw, from_values, to_raw

log = logging.getLogger("inspector.kserve")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
            "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
            "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _abort(context: grpc.ServicerContext, exc: BaseException, rpc: str):
    if isinstance(exc, errors.InspectorError):
        code = getattr(grpc.StatusCode, exc.code, grpc.StatusCode.INTERNAL)
        context.abort(code, exc.message)
    request_id = uuid.uuid4().hex[:12]
    log.error("OIP %s failed unexpectedly (request id %s)", rpc, request_id, exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id}); the server log has details")


def handled(rpc):
    @functools.wraps(rpc)
    def run(self, request, context):
        try:
            return rpc(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            _abort(context, exc, rpc.__name__)
    return run


def parameters(params) -> dict:
    """A protobuf map of InferParameter / ModelRepositoryParameter as plain values."""
    out = {}
    for key, p in params.items():
        which = p.WhichOneof("parameter_choice")
        out[key] = getattr(p, which) if which else None
    return out


def _set_param(target, value) -> None:
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    else:
        target.string_param = str(value)


def inputs_from(request: pb.ModelInferRequest) -> list[TensorIn]:
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise errors.InvalidArgument(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: "
                                     "give one per input, in the order of inputs", field="raw_input_contents")
    out = []
    for i, t in enumerate(request.inputs):
        field = f"inputs.{t.name or i}"
        if raw:
            if t.HasField("contents"):
                raise errors.InvalidArgument(f"input '{t.name}' has contents and raw_input_contents: give one",
                                             field=field)
            out.append(from_raw(t.name, t.datatype, t.shape, raw[i], field))
            continue
        if t.datatype in ("FP16", "BF16"):
            raise errors.InvalidArgument(f"input '{t.name}': {t.datatype} travels only as raw_input_contents",
                                         field=field)
        slot = CONTENTS.get(t.datatype)
        values = list(getattr(t.contents, slot)) if slot else []
        out.append(from_values(t.name, t.datatype, t.shape, values, field))
    return out


class KServeServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, inspector: Inspector) -> None:
        self.oip = Oip.of(inspector)

    @handled
    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    @handled
    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    @handled
    def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.oip.model_ready(request.name, request.version))

    @handled
    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(**self.oip.server_metadata())

    @handled
    def ModelMetadata(self, request, context):
        m = self.oip.model_metadata(request.name, request.version)
        T = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(name=m["name"], versions=m["versions"], platform=m["platform"],
                                        inputs=[T(**t) for t in m["inputs"]], outputs=[T(**t) for t in m["outputs"]])

    def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        call: Call = self.oip.start(request.model_name, request.model_version)
        ok = False
        try:
            with call.decoding():
                inputs = inputs_from(request)
            outcome = self.oip.infer(call, inputs, [o.name for o in request.outputs])
            with call.encoding():
                response = pb.ModelInferResponse(model_name=outcome.model_name, model_version=outcome.model_version,
                                                 id=request.id)
                for name, datatype, arr in outcome.outputs:
                    response.outputs.add(name=name, datatype=datatype, shape=arr.shape)
                    response.raw_output_contents.append(to_raw(arr))
            size, limit = response.ByteSize(), self.oip.core.config.max_message_bytes
            if size > limit:
                raise errors.ResourceExhausted(
                    f"the answer of {size} bytes exceeds this server's gRPC message limit of {limit} bytes "
                    "(--max-message-mb): ask for fewer outputs or a smaller batch, or use the REST endpoint "
                    "or inspector.v1 FeatureMaps, which have no such limit", field="outputs")
            ok = True
            return response
        finally:
            call.done(ok)

    @handled
    def ModelInfer(self, request, context):
        return self._infer(request)

    def ModelStreamInfer(self, request_iterator, context):
        """One answer per request, in order; a failed request answers with its error_message."""
        for request in request_iterator:
            try:
                yield pb.ModelStreamInferResponse(infer_response=self._infer(request))
            except errors.InspectorError as exc:
                yield pb.ModelStreamInferResponse(error_message=exc.message)
            except Exception as exc:  # noqa: BLE001 - the stream goes on; the log has the details
                request_id = uuid.uuid4().hex[:12]
                log.error("OIP ModelStreamInfer failed unexpectedly (request id %s)", request_id, exc_info=exc)
                yield pb.ModelStreamInferResponse(
                    error_message=f"internal error (request id {request_id}); the server log has details")

    @handled
    def ModelStatistics(self, request, context):
        return pb.ModelStatisticsResponse(model_stats=[
            stats_message(name, s) for name, s in self.oip.statistics(request.name, request.version)])

    @handled
    def RepositoryIndex(self, request, context):
        Row = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(models=[Row(**r) for r in self.oip.index(request.ready)])

    @handled
    def RepositoryModelLoad(self, request, context):
        self.oip.load(request.model_name, parameters(request.parameters))
        return pb.RepositoryModelLoadResponse()

    @handled
    def RepositoryModelUnload(self, request, context):
        self.oip.unload(request.model_name, parameters(request.parameters))
        return pb.RepositoryModelUnloadResponse()


def stats_message(name: str, s: ModelStats) -> pb.ModelStatistics:
    def d(x):
        return pb.StatisticDuration(count=x.count, ns=x.ns)

    return pb.ModelStatistics(
        name=name, version="1", last_inference=s.last_inference, inference_count=s.inference_count,
        execution_count=s.execution_count,
        inference_stats=pb.InferStatistics(success=d(s.success), fail=d(s.fail), queue=d(s.queue),
                                           compute_input=d(s.compute_input), compute_infer=d(s.compute_infer),
                                           compute_output=d(s.compute_output)),
        batch_stats=[pb.InferBatchStatistics(batch_size=b, compute_input=d(i), compute_infer=d(f),
                                             compute_output=d(o)) for b, (i, f, o) in sorted(s.batches.items())])


def add_to_server(inspector: Inspector, server: grpc.Server) -> None:
    """Serve inference.GRPCInferenceService from this core on the server."""
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(KServeServicer(inspector), server)
