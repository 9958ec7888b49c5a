"""Observability: a request id per call (the caller's own `x-request-id` when it sends one; in
every log record), one structured log line per call, and metrics through prometheus_client:
per-RPC counters and latency histograms (also under the standard grpc_server_* names), process
metrics, gauges and counters read at scrape time.
"""

from __future__ import annotations

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


def _usable_id(sent: str) -> bool:
    """A caller's x-request-id we keep: short printable ASCII."""
    return 0 < len(sent) <= 64 and sent.isascii() and sent.isprintable()


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
    """The server's metrics in a prometheus_client registry of its own: per-RPC counters and
    latency histograms (ours and the standard grpc_server_* names), process metrics, and values
    read at scrape time (gauges, and counters for cumulative values such as cache hits)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self._calls = Counter("inspector_rpc", "Finished RPCs by method and status code.", ("rpc", "code"),
                             registry=self.registry)
        self.latency = Histogram("inspector_rpc_seconds", "RPC latency.", ("rpc",), buckets=BUCKETS_S,
                                 registry=self.registry)
        self.started = Counter("grpc_server_started", "RPCs started on the server.",
                               ("grpc_service", "grpc_method"), registry=self.registry)
        self.handled = Counter("grpc_server_handled", "RPCs completed on the server, by status code.",
                               ("grpc_service", "grpc_method", "grpc_code"), registry=self.registry)
        self.handling = Histogram("grpc_server_handling_seconds", "RPC handling time.",
                                  ("grpc_service", "grpc_method"), buckets=BUCKETS_S, registry=self.registry)
        self._read: list[tuple[str, str, str, Callable[[], float]]] = []  # (kind, name, doc, read)
        self.registry.register(_Readings(self._read))

    def start(self, method: str) -> None:
        service, _, rpc = method.lstrip("/").rpartition("/")
        self.started.labels(service or "?", rpc).inc()

    def observe(self, rpc: str, code: str, seconds: float, service: str = "?") -> None:
        self._calls.labels(rpc, code).inc()
        self.latency.labels(rpc).observe(seconds)
        self.handled.labels(service, rpc, code).inc()
        self.handling.labels(service, rpc).observe(seconds)

    @property
    def calls(self) -> dict[tuple[str, str], float]:
        """Finished RPCs so far by (rpc, code)."""
        return {(s.labels["rpc"], s.labels["code"]): s.value for metric in self._calls.collect()
                for s in metric.samples if s.name.endswith("_total")}

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A value that goes up and down, read at each scrape."""
        self._read.append(("gauge", name, doc, read))

    def counter(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A cumulative value kept elsewhere (exposed as NAME_total), read at each scrape."""
        self._read.append(("counter", name, doc, read))

    def render(self) -> str:
        """The Prometheus text exposition format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


class _Readings:
    """A collector of values read at scrape time; one that fails is left out of that scrape."""

    def __init__(self, readings: list) -> None:
        self.readings = readings

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for kind, name, doc, read in list(self.readings):
            try:
                value = float(read())
            except Exception:  # noqa: BLE001 - a broken reading must not break the scrape
                continue
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, doc, value=value)


class ObservingInterceptor(grpc.ServerInterceptor):
    """Gives each call a request id (also sent as `x-request-id`), times it, counts its code."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def intercept_service(self, continuation, details):
        method = details.method or "?"
        service, _, rpc = method.lstrip("/").rpartition("/")
        return wrap_handler(continuation(details), lambda b: self._unary(service, rpc, b),
                            lambda b: self._stream(service, rpc, b))

    def _begin(self, service: str, rpc: str, context: grpc.ServicerContext) -> tuple[str, contextvars.Token, float]:
        self.metrics.started.labels(service or "?", rpc).inc()
        sent = dict(context.invocation_metadata() or ()).get("x-request-id", "")
        request_id = sent if _usable_id(sent) else uuid.uuid4().hex[:12]  # a caller's own id is kept
        try:
            context.send_initial_metadata((("x-request-id", request_id),))
        except (RuntimeError, ValueError):  # the call is already gone
            pass
        return request_id, _request_id.set(request_id), time.perf_counter()

    def _end(self, service: str, rpc: str, context, token, started: float, failed: bool) -> None:
        code = context.code() if hasattr(context, "code") else None
        name = code.name if isinstance(code, grpc.StatusCode) else ("UNKNOWN" if failed else "OK")
        seconds = time.perf_counter() - started
        self.metrics.observe(rpc, name, seconds, service or "?")
        log.info("%s %s %.1f ms", rpc, name, seconds * 1000,
                 extra={"fields": {"rpc": rpc, "code": name, "ms": round(seconds * 1000, 2),
                                   "peer": context.peer()}})
        _request_id.reset(token)

    def _unary(self, service: str, rpc: str, behavior):
        def run(request, context):
            _, token, started = self._begin(service, rpc, context)
            failed = True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                self._end(service, rpc, context, token, started, failed)

        return run

    def _stream(self, service: str, rpc: str, behavior):
        def run(request, context):
            _, token, started = self._begin(service, rpc, context)
            failed = True
            try:
                yield from behavior(request, context)
                failed = False
            finally:
                self._end(service, rpc, context, token, started, failed)

        return run


def serve_metrics(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    """Serve GET /metrics on host:port (0: a free port) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            from prometheus_client import CONTENT_TYPE_LATEST

            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    return httpd
