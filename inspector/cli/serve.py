"""`inspector serve`: run the gRPC server until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from inspector.config import InspectorConfig, default_store_dir


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the gRPC server")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=50051, help="gRPC port (0: a free one, printed on start)")
    p.add_argument("--store", default=None,
                   help=f"model store: a folder, shared:/path (several servers), or s3://bucket/prefix "
                        f"(credentials from the AWS_* environment) (default {default_store_dir()})")
    p.add_argument("--store-cache", type=Path, help="s3 stores: where model files are cached on this machine")
    p.add_argument("--store-cache-max-gb", type=float,
                   help="s3 stores: bound the cache, evicting least recently used models not in use (default: "
                        "unbounded)")
    p.add_argument("--s3-endpoint-url", help="s3 stores: the endpoint (default $AWS_ENDPOINT_URL)")
    p.add_argument("--s3-region", help="s3 stores: the region (default $AWS_REGION)")
    p.add_argument("--store-refresh", type=float, help="shared stores: seconds a view of the names may be old")
    p.add_argument("--model-root", type=Path, action="append", default=[],
                   help="allow LoadModel(server_path) under this folder (repeatable)")
    p.add_argument("--providers", default="cpu", help="execution providers in preference order: cuda,cpu")
    p.add_argument("--strict-providers", action="store_true",
                   help="refuse (FAILED_PRECONDITION) instead of falling back to CPU")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--workers", type=int, default=InspectorConfig.max_concurrent,
                   help="RPCs executing at once")
    p.add_argument("--max-queued", type=int, default=InspectorConfig.max_queued,
                   help="RPCs waiting for a slot; more get RESOURCE_EXHAUSTED with a retry hint")
    p.add_argument("--max-message-mb", type=float, default=4.0,
                   help="largest gRPC message the server sends; results stream in chunks below it")
    p.add_argument("--max-upload-mb", type=float, default=2048.0, help="largest model upload")
    p.add_argument("--max-response-mb", type=float, default=InspectorConfig.max_response_bytes / (1 << 20),
                   help="largest result (all streamed chunks together)")
    p.add_argument("--auth-token-file", type=Path, default=None,
                   help="require a bearer token: one accepted token a line (also $INSPECTOR_AUTH_TOKEN)")
    p.add_argument("--tls-cert", type=Path, help="serve TLS with this PEM certificate (chain)")
    p.add_argument("--tls-key", type=Path, help="the PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", type=Path,
                   help="mutual TLS: require client certificates signed by this PEM CA")
    p.add_argument("--no-vetting", action="store_true",
                   help="skip the checker and the trial run in a child process for new models (faster, "
                        "unsafe for untrusted models)")
    p.add_argument("--vet-timeout", type=float, default=InspectorConfig.vet_timeout_s,
                   help="seconds a new model may take to load and run once in the vetting child")
    p.add_argument("--no-shared-memory", action="store_true",
                   help="always stream results over gRPC; by default local clients that prove they share "
                        "/dev/shm get large tensors through files there")
    p.add_argument("--http-port", type=int, default=None,
                   help="also serve the JSON API (/api/v1, docs at /api/v1/docs) on this port, same host")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics on http://HOST:PORT/metrics")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="json: one object a line")


def config_from_args(args: argparse.Namespace) -> InspectorConfig:
    from inspector.service.auth import load_tokens

    config = InspectorConfig(
        model_roots=tuple(args.model_root), providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
        strict_providers=args.strict_providers, intra_op_threads=args.threads,
        max_message_bytes=int(args.max_message_mb * (1 << 20)),
        max_upload_bytes=int(args.max_upload_mb * (1 << 20)),
        max_response_bytes=int(args.max_response_mb * (1 << 20)),
        max_concurrent=args.workers, max_queued=args.max_queued,
        vetting=not args.no_vetting, vet_timeout_s=args.vet_timeout,
        shared_memory=not args.no_shared_memory,
        auth_tokens=load_tokens(args.auth_token_file),
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca)
    if args.store is not None:
        config.store_dir = args.store if str(args.store).startswith(("s3:", "shared:")) else Path(args.store)
    config.store_cache_dir, config.s3_endpoint_url = args.store_cache, args.s3_endpoint_url
    if args.store_cache_max_gb is not None:
        config.store_cache_max_bytes = int(args.store_cache_max_gb * (1 << 30))
    config.s3_region, config.store_refresh_s = args.s3_region, args.store_refresh
    return config


def _logging(level: str, form: str) -> None:
    """Every record carries the call's request id; json: one object a line."""
    from inspector.service.metrics import JsonFormatter, RequestIdFilter

    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def run(args: argparse.Namespace) -> int:
    from inspector.service.server import start_server

    _logging(args.log_level, args.log_format)
    try:
        config = config_from_args(args)
        running = start_server(config, host=args.host, port=args.port, metrics_port=args.metrics_port,
                               http_port=args.http_port)
    except (ValueError, OSError) as exc:
        print(f"inspector serve: {exc}", file=sys.stderr)
        return 2
    print(f"inspector serving on {args.host}:{running.port}", flush=True)
    if running.http is not None:
        print(f"HTTP API on {running.http.scheme}://{args.host}:{running.http.port}/api/v1/docs", flush=True)
    if running.metrics_port is not None:
        print(f"metrics on http://{args.host}:{running.metrics_port}/metrics", flush=True)
    for entry, reason in running.quarantined_now:
        print(f"quarantined corrupt store entry {entry}: {reason}", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):  # a timed wait: a signal that lands on another thread still gets seen
        pass
    running.stop(grace=10.0)
    return 0
