"""Build and run the gRPC server: the Inspector service, health checking and reflection,
behind call observation, authentication and back-pressure interceptors (in that order)."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from inspector.config import InspectorConfig
from inspector.core import Inspector
from inspector.kserve.servicer import add_to_server as add_kserve_servicer
from inspector.service import reflection_v1
from inspector.service.auth import AuthInterceptor
from inspector.service.limits import Gate, LimitsInterceptor
from inspector.service.malloc import tune_malloc
from inspector.service.metrics import Metrics, ObservingInterceptor, serve_metrics
from inspector.service.servicer import InspectorServicer
from inspector.service.shared_memory import SharedMemory
from inspector.service.tls import server_credentials
from inspector.store import local_root, watch_ready
from inspector.store.vetting import quarantined, verify_store
from inspector.v1 import inspector_pb2 as pb
from inspector.v1 import inspector_pb2_grpc as pb_grpc

log = logging.getLogger("inspector.service")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inspector"].full_name
SPARE_THREADS = 4  # for health checks and for refusing calls while every slot is taken


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    inspector: Inspector
    health: health.HealthServicer
    metrics: Metrics = field(default_factory=Metrics)
    gate: Gate | None = None
    metrics_port: int | None = None
    quarantined_now: list[tuple[str, str]] = field(default_factory=list)  # found at this start
    _metrics_http: object = None
    shared_memory: SharedMemory | None = None  # None: configured off
    http: object = None  # inspector.http.server.RunningHttp when an HTTP port was asked for
    stop_ready: object = None  # threading.Event ending the store-readiness watch

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def quarantined(self) -> list[str]:
        """Every store entry ever quarantined as corrupt (folder names under .quarantine/)."""
        return quarantined(self.inspector.store.root)

    def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls at once; in-flight calls get `grace` seconds to finish."""
        self.health.enter_graceful_shutdown()
        if self.stop_ready is not None:
            self.stop_ready.set()
        if self.http is not None:
            self.http.stop()
        self.server.stop(grace).wait()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        if self.shared_memory is not None:
            self.shared_memory.close()


def start_server(config: InspectorConfig, host: str = "127.0.0.1", port: int = 0,
                 workers: int | None = None, inspector: Inspector | None = None,
                 metrics_port: int | None = None, http_port: int | None = None) -> RunningServer:
    """Start serving on host:port (0: a free port) and return at once.

    `workers` overrides config.max_concurrent (RPCs executing at once); `metrics_port`
    (0: a free port) serves Prometheus text on http://host:port/metrics; `http_port` (0: a free
    port) serves the JSON API (inspector.http) from the same core, tokens, TLS and limits.
    """
    slots = workers if workers is not None else config.max_concurrent  # the caller's config stays as is
    tune_malloc()
    found = verify_store(local_root(config.store_dir)) if inspector is None else []
    inspector = inspector or Inspector(config)
    gate = Gate(slots, config.max_queued)
    metrics = Metrics()
    threads = slots + config.max_queued + SPARE_THREADS
    options = [("grpc.max_receive_message_length", config.max_request_bytes),
               ("grpc.max_send_message_length", config.max_message_bytes + 64 * 1024),
               ("grpc.so_reuseport", 0)]
    interceptors = [ObservingInterceptor(metrics)] + (
        [AuthInterceptor(config.auth_tokens)] if config.auth_tokens else []) + [
        LimitsInterceptor(gate, config.max_response_bytes, config.retry_after_s)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
                         interceptors=interceptors, options=options, maximum_concurrent_rpcs=threads)
    shm = SharedMemory.from_config(config)
    if shm is not None:
        shm.sweep()  # result files a previous, killed server left behind
    pb_grpc.add_InspectorServicer_to_server(InspectorServicer(inspector, shm), server)
    add_kserve_servicer(inspector, server)  # inference.GRPCInferenceService: the Open Inference Protocol
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    def serving(ready: bool) -> None:  # NOT_SERVING until the store answers (a bucket may not yet)
        state = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, state)

    serving(False)
    stop_ready = watch_ready(inspector.store, serving)
    reflection_v1.enable((SERVICE_NAME, health.SERVICE_NAME, "inference.GRPCInferenceService"), server)
    address = f"{host}:{port}"
    if config.tls_cert is not None or config.tls_key is not None:
        if config.tls_cert is None or config.tls_key is None:
            raise ValueError("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
        bound = server.add_secure_port(address, server_credentials(
            config.tls_cert, config.tls_key, config.tls_client_ca))
    elif config.tls_client_ca is not None:
        raise ValueError("--tls-client-ca needs TLS: give --tls-cert and --tls-key too")
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    _gauges(metrics, inspector, gate, shm)
    http = serve_metrics(metrics, host, metrics_port) if metrics_port is not None else None
    server.start()
    web = None
    if http_port is not None:
        from inspector.http.server import start_http

        web = start_http(inspector, config, host, http_port, gate)
    log.info("inspector serving on %s:%d (%s, %s, store %s)", host, bound,
             "TLS" if config.tls_cert else "plain text",
             "token auth" if config.auth_tokens else "no auth", config.store_dir)
    return RunningServer(server, bound, inspector, health_servicer, metrics, gate,
                         http.server_address[1] if http else None, found, http, shm, web, stop_ready)


def _gauges(metrics: Metrics, inspector: Inspector, gate: Gate, shm: SharedMemory | None) -> None:
    """Queue depth, running calls, session-cache counters, quarantined entries, shared memory."""
    metrics.gauge("inspector_calls_running", "RPCs executing now.", lambda: gate.running)
    metrics.gauge("inspector_queue_depth", "RPCs waiting for a slot.", lambda: gate.waiting)
    for key in ("hits", "misses", "evictions"):
        metrics.counter(f"inspector_session_cache_{key}", f"Session cache {key} since start.",
                        lambda k=key: inspector.sessions.stats().get(k, 0))
    for key in ("entries", "bytes"):
        metrics.gauge(f"inspector_session_cache_{key}", f"Session cache {key} now.",
                      lambda k=key: inspector.sessions.stats().get(k, 0))
    metrics.gauge("inspector_store_quarantined", "Store entries quarantined as corrupt.",
                  lambda: len(quarantined(inspector.store.root)))
    if getattr(inspector.store, "cache_bytes", lambda: None)() is not None:  # an S3 store's local cache
        metrics.gauge("inspector_store_cache_bytes", "Bytes of model files in this replica's local cache.",
                      inspector.store.cache_bytes)
    if shm is not None:
        metrics.counter("inspector_shm_bytes", "Result bytes handed to local clients in shared memory.",
                        lambda: shm.bytes_sent)
        metrics.counter("inspector_shm_files", "Shared-memory result files written.", lambda: shm.files_written)
        metrics.counter("inspector_shm_files_removed", "Shared-memory result files no client opened, removed.",
                        lambda: shm.files_removed)
