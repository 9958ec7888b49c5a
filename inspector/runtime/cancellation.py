"""The current call's cancellation check, carried in a context variable.

The service sets it per RPC (client gone or deadline passed); long loops and session runs in
the core read it, so no signature has to thread it through.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from inspector import errors

_check: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar(
    "inspector_cancelled", default=None)


@contextlib.contextmanager
def cancellable(is_cancelled: Callable[[], bool]) -> Iterator[None]:
    token = _check.set(is_cancelled)
    try:
        yield
    finally:
        _check.reset(token)


def cancellation_active() -> bool:
    """True inside a call that can be cancelled (a service RPC); in-process runs need no watcher."""
    return _check.get() is not None


def is_cancelled() -> bool:
    check = _check.get()
    return bool(check and check())


def raise_if_cancelled() -> None:
    if is_cancelled():
        raise errors.Cancelled("the call was cancelled or its deadline passed; work stopped")
