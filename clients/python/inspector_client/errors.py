"""Readable text of a failed call."""

from __future__ import annotations


def describe_error(exc: BaseException) -> str:
    """"CODE: details" for a gRPC error, the exception's text otherwise."""
    details = getattr(exc, "details", None)
    code = getattr(exc, "code", None)
    if callable(details) and callable(code):
        return f"{code().name}: {details()}"
    return str(exc)
