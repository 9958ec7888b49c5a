"""Back-pressure and size bounds: a bounded number of executing RPCs with a bounded queue,
a cap on a streamed result's total bytes, and a session cache bounded by approximate memory.

A call that finds the queue full gets RESOURCE_EXHAUSTED at once with a `retry-after-ms`
trailer; a queued call whose deadline passes gets DEADLINE_EXCEEDED without having run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import grpc

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_FACTORIES = {(False, False): grpc.unary_unary_rpc_method_handler,
              (False, True): grpc.unary_stream_rpc_method_handler,
              (True, False): grpc.stream_unary_rpc_method_handler,
              (True, True): grpc.stream_stream_rpc_method_handler}


def wrap_handler(handler: grpc.RpcMethodHandler | None, unary: Callable, stream: Callable):
    """The handler with its behavior replaced by unary(behavior) or stream(behavior)."""
    if handler is None:
        return None
    kind = (handler.request_streaming, handler.response_streaming)
    if handler.response_streaming:
        behavior = stream(handler.unary_stream or handler.stream_stream)
    else:
        behavior = unary(handler.unary_unary or handler.stream_unary)
    return _FACTORIES[kind](behavior, request_deserializer=handler.request_deserializer,
                            response_serializer=handler.response_serializer)


class Busy(Exception):
    """The gate's queue is full."""


class Gate:
    """At most `slots` holders at once and at most `queue` waiters; FIFO is not promised."""

    def __init__(self, slots: int, queue: int) -> None:
        if slots < 1 or queue < 0:
            raise ValueError("a gate needs at least one slot and a queue of zero or more")
        self.slots, self.queue = slots, queue
        self.running = self.waiting = 0
        self._cond = threading.Condition()

    def enter(self, give_up: Callable[[], bool]) -> bool:
        """Take a slot (True), or False when `give_up()` turns true while waiting; Busy if full."""
        with self._cond:
            if self.running < self.slots:
                self.running += 1
                return True
            if self.waiting >= self.queue:
                raise Busy
            self.waiting += 1
            try:
                while self.running >= self.slots:
                    if give_up():
                        return False
                    self._cond.wait(0.05)
                self.running += 1
                return True
            finally:
                self.waiting -= 1

    def leave(self) -> None:
        with self._cond:
            self.running -= 1
            self._cond.notify()


class LimitsInterceptor(grpc.ServerInterceptor):
    """Admission through a Gate, and RESOURCE_EXHAUSTED when a result outgrows `max_response_bytes`."""

    def __init__(self, gate: Gate, max_response_bytes: int, retry_after_s: float = 1.0) -> None:
        self.gate, self.max_response = gate, max_response_bytes
        self.retry_ms = int(retry_after_s * 1000)

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if (details.method or "").startswith(EXEMPT_PREFIXES):
            return handler
        return wrap_handler(handler, self._unary, self._stream)

    def _admit(self, context: grpc.ServicerContext) -> None:
        def give_up() -> bool:
            left = context.time_remaining()
            return not context.is_active() or (left is not None and left <= 0)

        try:
            admitted = self.gate.enter(give_up)
        except Busy:
            from inspector.service import status

            status.abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"the server is busy ({self.gate.running} calls running, "
                         f"{self.gate.waiting} waiting); retry in about {self.retry_ms / 1000:g} s",
                         reason="Busy", retry_after_s=self.retry_ms / 1000,
                         trailing=(("retry-after-ms", str(self.retry_ms)),))
        if not admitted:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                          "the deadline passed while the call waited for a free slot")

    def _check_size(self, context: grpc.ServicerContext, sent: int) -> None:
        if sent > self.max_response:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"the result exceeds the response limit of {self.max_response} bytes; "
                          "ask for fewer layers, a smaller batch or smaller images")

    def _unary(self, behavior):
        def run(request, context):
            self._admit(context)
            try:
                response = behavior(request, context)
            finally:
                self.gate.leave()
            self._check_size(context, response.ByteSize() if response is not None else 0)
            return response

        return run

    def _stream(self, behavior):
        def run(request, context):
            self._admit(context)
            try:
                sent = 0
                for message in behavior(request, context):
                    sent += _result_bytes(message)
                    self._check_size(context, sent)
                    yield message
            finally:
                self.gate.leave()

        return run


def _result_bytes(message) -> int:
    """A streamed message's size plus the bytes of the items it hands over in shared memory."""
    return message.ByteSize() + sum(i.nbytes for i in getattr(message, "shared_items", ()))
