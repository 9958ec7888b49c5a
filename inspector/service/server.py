"""Build and run the gRPC server: the Inspector service, health checking and reflection."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from inspector.config import InspectorConfig
from inspector.core import Inspector
from inspector.service.servicer import InspectorServicer
from inspector.v1 import inspector_pb2 as pb
from inspector.v1 import inspector_pb2_grpc as pb_grpc

log = logging.getLogger("inspector.service")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inspector"].full_name


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    inspector: Inspector
    health: health.HealthServicer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace: float | None = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def start_server(config: InspectorConfig, host: str = "127.0.0.1", port: int = 0,
                 workers: int = 8, inspector: Inspector | None = None) -> RunningServer:
    """Start serving on host:port (0: a free port) and return at once."""
    inspector = inspector or Inspector(config)
    options = [("grpc.max_receive_message_length", config.max_request_bytes),
               ("grpc.max_send_message_length", config.max_message_bytes + 64 * 1024),
               ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
                         options=options)
    pb_grpc.add_InspectorServicer_to_server(InspectorServicer(inspector), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
                                        server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    server.start()
    log.info("inspector serving on %s:%d (store %s)", host, bound, config.store_dir)
    return RunningServer(server, bound, inspector, health_servicer)
