"""`inspector serve`: run the gRPC server until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from inspector.config import InspectorConfig, default_store_dir


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the gRPC server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--store", type=Path, default=None, help=f"model store (default {default_store_dir()})")
    p.add_argument("--model-root", type=Path, action="append", default=[],
                   help="allow LoadModel(server_path) under this folder (repeatable)")
    p.add_argument("--providers", default="cpu", help="execution providers in preference order: cuda,cpu")
    p.add_argument("--strict-providers", action="store_true",
                   help="refuse (FAILED_PRECONDITION) instead of falling back to CPU")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--workers", type=int, default=8, help="concurrent RPCs")
    p.add_argument("--max-message-mb", type=float, default=4.0,
                   help="largest gRPC message the server sends; results stream in chunks below it")
    p.add_argument("--max-upload-mb", type=float, default=2048.0)
    p.add_argument("--log-level", default="INFO")


def config_from_args(args: argparse.Namespace) -> InspectorConfig:
    config = InspectorConfig(
        model_roots=tuple(args.model_root), providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
        strict_providers=args.strict_providers, intra_op_threads=args.threads,
        max_message_bytes=int(args.max_message_mb * (1 << 20)),
        max_upload_bytes=int(args.max_upload_mb * (1 << 20)))
    if args.store is not None:
        config.store_dir = args.store
    return config


def run(args: argparse.Namespace) -> int:
    from inspector.service.server import start_server

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    running = start_server(config_from_args(args), host=args.host, port=args.port, workers=args.workers)
    print(f"inspector serving on {args.host}:{running.port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.stop(grace=10.0)
    return 0
