"""Domain errors. Each maps to one gRPC status code at the service edge.

A user's mistake is always one of these, with a sentence that names the bad field or layer
and, where possible, what to do instead. Anything else reaching the service is a bug.
"""

from __future__ import annotations


class InspectorError(Exception):
    """Base of every error the core raises on purpose."""

    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(InspectorError):
    """Malformed model, input, unknown layer name, bad parameter."""

    code = "INVALID_ARGUMENT"


class NotFound(InspectorError):
    """Unknown model id or name."""

    code = "NOT_FOUND"


class ResourceExhausted(InspectorError):
    """A configured size or concurrency limit was hit; the message says which."""

    code = "RESOURCE_EXHAUSTED"


class FailedPrecondition(InspectorError):
    """The request is valid but the server cannot serve it in its current configuration."""

    code = "FAILED_PRECONDITION"


class Cancelled(InspectorError):
    """The caller went away or its deadline passed; work stopped."""

    code = "CANCELLED"


class PermissionDenied(InspectorError):
    """A path outside the configured model roots, or similar."""

    code = "PERMISSION_DENIED"
