"""Bearer-token authentication: a server interceptor in front of every RPC but health/reflection.

Tokens come from a file (one a line) and/or $INSPECTOR_AUTH_TOKEN; each is compared in constant
time. A refused call is logged with its peer and method, never with the token it sent.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable
from pathlib import Path

import grpc

from inspector.service.limits import wrap_handler

log = logging.getLogger("inspector.service.auth")
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
ENV_TOKEN = "INSPECTOR_AUTH_TOKEN"


def load_tokens(path: Path | None = None, env: bool = True) -> tuple[str, ...]:
    """Tokens from `path` (one a line, blank lines and #-comments skipped) and the env var."""
    tokens: list[str] = []
    if path is not None:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read the auth token file {path}: {exc.strerror}") from None
        tokens += [t.strip() for t in lines if t.strip() and not t.strip().startswith("#")]
        if not tokens:
            raise ValueError(f"the auth token file {path} holds no token")
    if env and os.environ.get(ENV_TOKEN, "").strip():
        tokens.append(os.environ[ENV_TOKEN].strip())
    return tuple(dict.fromkeys(tokens))


def token_matches(sent: str, tokens: tuple[str, ...]) -> bool:
    """True if `sent` equals one of `tokens`; every token is compared, in constant time each."""
    found = False
    for token in tokens:
        found |= hmac.compare_digest(sent.encode(), token.encode())
    return found


class AuthInterceptor(grpc.ServerInterceptor):
    """UNAUTHENTICATED unless the call carries `authorization: Bearer <one of the tokens>`."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        if not tokens:
            raise ValueError("AuthInterceptor needs at least one token")
        self.tokens = tokens

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails):
        method = details.method or ""
        if method.startswith(OPEN_PREFIXES):
            return continuation(details)
        header = dict(details.invocation_metadata or ()).get("authorization", "")
        scheme, _, sent = header.partition(" ")
        if scheme.lower() == "bearer" and token_matches(sent.strip(), self.tokens):
            return continuation(details)
        reason = "no bearer token" if not header else "a wrong token"
        return _refusal(continuation(details), method, reason)


def _refusal(handler: grpc.RpcMethodHandler | None, method: str, reason: str) -> grpc.RpcMethodHandler:
    """A handler of the same streaming kind as `handler` that logs and aborts UNAUTHENTICATED."""
    message = (f"this server needs a valid bearer token ({reason} was sent); pass --token or set "
               "INSPECTOR_AUTH_TOKEN")

    def abort(request, context):
        log.warning("refused %s from %s: %s", method, context.peer(), reason)  # within the call: has its id
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    def abort_stream(request, context):
        abort(request, context)
        yield  # pragma: no cover - makes this a generator; abort raises first

    # an unknown method is refused the same way: an unauthenticated caller learns nothing of the API
    return wrap_handler(handler, lambda _: abort, lambda _: abort_stream) or grpc.unary_unary_rpc_method_handler(abort)
