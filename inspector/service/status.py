"""Errors as google.rpc.Status with details (grpc-status-details-bin), as gRPC clients expect:
BadRequest naming the field, ErrorInfo with a reason code, RetryInfo for back-pressure."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "inspector"


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, *, field: str | None = None,
          reason: str | None = None, retry_after_s: float | None = None, trailing: tuple = ()):
    """End the call with `code` and `message`, carrying the details a client can read with
    grpc_status.rpc_status.from_call (or any language's equivalent)."""
    details = [error_details_pb2.ErrorInfo(reason=reason or code.name, domain=DOMAIN,
                                           metadata={"field": field} if field else {})]
    if field:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=message)]))
    if retry_after_s is not None:
        whole = int(retry_after_s)
        details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
            seconds=whole, nanos=int((retry_after_s - whole) * 1e9))))
    packed = []
    for detail in details:
        box = any_pb2.Any()
        box.Pack(detail)
        packed.append(box)
    rich = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=packed))
    context.set_trailing_metadata(tuple(trailing) + tuple(rich.trailing_metadata))
    context.abort(rich.code, rich.details)
