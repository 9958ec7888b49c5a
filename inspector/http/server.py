"""Run the HTTP edge on uvicorn in a thread of the server's process."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from inspector.config import InspectorConfig
from inspector.core import Inspector


@dataclass
class RunningHttp:
    server: object  # uvicorn.Server
    thread: threading.Thread
    port: int
    scheme: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_http(core: Inspector, config: InspectorConfig, host: str = "127.0.0.1", port: int = 0,
               gate=None) -> RunningHttp:
    """Serve the API on host:port (0: a free port) with the config's tokens and TLS; returns once
    the socket listens."""
    import ssl

    import uvicorn

    from inspector.http.app import create_app

    app = create_app(core, tokens=config.auth_tokens, gate=gate, retry_after_s=config.retry_after_s)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else each response waits ~40 ms for an ACK
    sock.bind((host, port))
    tls = {}
    if config.tls_cert is not None and config.tls_key is not None:
        tls = {"ssl_certfile": str(config.tls_cert), "ssl_keyfile": str(config.tls_key)}
        if config.tls_client_ca is not None:
            tls.update(ssl_ca_certs=str(config.tls_client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=5, **tls))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise OSError(f"the HTTP edge did not start on {host}:{port}")
    return RunningHttp(server, thread, sock.getsockname()[1], "https" if tls else "http")
