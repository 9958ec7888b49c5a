"""Server reflection under its stable name, grpc.reflection.v1, beside v1alpha.

grpcio-reflection serves only v1alpha. The v1 protocol is the same messages under another
package (identical field numbers, so identical bytes), so the v1alpha servicer answers v1 too.
"""

from __future__ import annotations

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1 = "grpc.reflection.v1.ServerReflection"


def enable(service_names: tuple[str, ...], server: grpc.Server) -> None:
    """Reflection for `service_names` on both v1alpha and v1."""
    names = (*service_names, reflection.SERVICE_NAME, V1)
    reflection.enable_server_reflection(names, server)
    servicer = reflection.ReflectionServicer(names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1, {"ServerReflectionInfo": handler}),))
