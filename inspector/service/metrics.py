"""Observability: a request id per call (in every log record), one structured log line per
call, per-RPC counters and latency histograms, served in the Prometheus text format.

prometheus_client is not a dependency: the exposition is a few lines over http.server.
"""

from __future__ import annotations

import bisect
import contextvars
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

from inspector.service.limits import wrap_handler

log = logging.getLogger("inspector.service.calls")
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the call this thread serves (None outside a call)."""
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Puts `request_id` on every log record (\"-\" outside a call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, request id, message and any `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": round(record.created, 3), "level": record.levelname, "logger": record.name,
               "request_id": getattr(record, "request_id", None) or _request_id.get(),
               "message": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


class Metrics:
    """Counters and histograms in memory, rendered as Prometheus text; gauges are callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[tuple[str, str], int] = {}
        self.latency: dict[str, list[int]] = {}  # per rpc: counts per bucket, +Inf last
        self.latency_sum: dict[str, float] = {}
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def observe(self, rpc: str, code: str, seconds: float) -> None:
        with self._lock:
            self.calls[(rpc, code)] = self.calls.get((rpc, code), 0) + 1
            counts = self.latency.setdefault(rpc, [0] * (len(BUCKETS_S) + 1))
            counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
            self.latency_sum[rpc] = self.latency_sum.get(rpc, 0.0) + seconds

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (doc, read)

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines = ["# HELP inspector_rpc_total Finished RPCs by method and status code.",
                 "# TYPE inspector_rpc_total counter"]
        with self._lock:
            calls, latency, sums = dict(self.calls), {k: list(v) for k, v in self.latency.items()}, dict(
                self.latency_sum)
        lines += [f'inspector_rpc_total{{rpc="{r}",code="{c}"}} {n}' for (r, c), n in sorted(calls.items())]
        lines += ["# HELP inspector_rpc_seconds RPC latency.", "# TYPE inspector_rpc_seconds histogram"]
        for rpc, counts in sorted(latency.items()):
            total = 0
            for bound, count in zip((*BUCKETS_S, "+Inf"), counts, strict=True):
                total += count
                lines.append(f'inspector_rpc_seconds_bucket{{rpc="{rpc}",le="{bound}"}} {total}')
            lines += [f'inspector_rpc_seconds_sum{{rpc="{rpc}"}} {sums[rpc]:.6f}',
                      f'inspector_rpc_seconds_count{{rpc="{rpc}"}} {total}']
        for name, (doc, read) in sorted(self.gauges.items()):
            try:
                value = float(read())
            except Exception:  # noqa: BLE001 - a broken gauge must not break the scrape
                continue
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


class ObservingInterceptor(grpc.ServerInterceptor):
    """Gives each call a request id (also sent as `x-request-id`), times it, counts its code."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def intercept_service(self, continuation, details):
        rpc = (details.method or "?").rsplit("/", 1)[-1]
        return wrap_handler(continuation(details), lambda b: self._unary(rpc, b),
                            lambda b: self._stream(rpc, b))

    def _begin(self, context: grpc.ServicerContext) -> tuple[str, contextvars.Token, float]:
        request_id = uuid.uuid4().hex[:12]
        try:
            context.send_initial_metadata((("x-request-id", request_id),))
        except (RuntimeError, ValueError):  # the call is already gone
            pass
        return request_id, _request_id.set(request_id), time.perf_counter()

    def _end(self, rpc: str, context, token, started: float, failed: bool) -> None:
        code = context.code() if hasattr(context, "code") else None
        name = code.name if isinstance(code, grpc.StatusCode) else ("UNKNOWN" if failed else "OK")
        seconds = time.perf_counter() - started
        self.metrics.observe(rpc, name, seconds)
        log.info("%s %s %.1f ms", rpc, name, seconds * 1000,
                 extra={"fields": {"rpc": rpc, "code": name, "ms": round(seconds * 1000, 2),
                                   "peer": context.peer()}})
        _request_id.reset(token)

    def _unary(self, rpc: str, behavior):
        def run(request, context):
            _, token, started = self._begin(context)
            failed = True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                self._end(rpc, context, token, started, failed)

        return run

    def _stream(self, rpc: str, behavior):
        def run(request, context):
            _, token, started = self._begin(context)
            failed = True
            try:
                yield from behavior(request, context)
                failed = False
            finally:
                self._end(rpc, context, token, started, failed)

        return run


def serve_metrics(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    """Serve GET /metrics on host:port (0: a free port) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    return httpd
