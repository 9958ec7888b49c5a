"""gRPC conventions other services' clients rely on: reflection v1 and v1alpha, google.rpc.Status
details on errors (BadRequest with the field, ErrorInfo with a reason)."""

import grpc
import numpy as np
import pytest
from factory import small_cnn
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status


@pytest.mark.parametrize("package", ["grpc.reflection.v1", "grpc.reflection.v1alpha"])
def test_reflection_lists_and_describes_the_service(server, package):
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_stream(f"/{package}.ServerReflection/ServerReflectionInfo",
                                     request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        listed, described = call(iter([reflection_pb2.ServerReflectionRequest(list_services=""),
                                       reflection_pb2.ServerReflectionRequest(
                                           file_containing_symbol="inspector.v1.Inspector")]), timeout=10)
    names = {s.name for s in listed.list_services_response.service}
    assert {"inspector.v1.Inspector", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= names
    assert described.file_descriptor_response.file_descriptor_proto  # the .proto, for generic clients


def test_errors_carry_status_details(client):
    client.load_model(small_cnn(seed=61).SerializeToString(), name="details")
    with pytest.raises(grpc.RpcError) as err:
        client.feature_maps("details", np.zeros((1, 3, 32, 32), np.float32), ["relu_9"])
    status = rpc_status.from_call(err.value)
    assert status is not None and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    kinds = {}
    for detail in status.details:
        for cls in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
            if detail.Is(cls.DESCRIPTOR):
                kinds[cls.__name__] = cls()
                detail.Unpack(kinds[cls.__name__])
    assert kinds["ErrorInfo"].reason == "InvalidArgument" and kinds["ErrorInfo"].domain == "inspector"
    assert kinds["BadRequest"].field_violations[0].field == "layers"
    assert "relu_9" in kinds["BadRequest"].field_violations[0].description
    with pytest.raises(grpc.RpcError) as err:
        client.model_info("no-such-model")
    status = rpc_status.from_call(err.value)
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR))
    assert info.reason == "NotFound"
