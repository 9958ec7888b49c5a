"""Server and core configuration, one dataclass; the CLI fills it from flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def default_store_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("inspector")) / "models"


@dataclass
class InspectorConfig:
    store_dir: Path = field(default_factory=default_store_dir)
    model_roots: tuple[Path, ...] = ()  # server-side paths must lie under one of these
    providers: tuple[str, ...] = ("cpu",)  # preference order; "cuda" falls back to cpu
    strict_providers: bool = False  # refuse instead of falling back
    intra_op_threads: int | None = None
    max_sessions: int = 32
    max_upload_bytes: int = 2 << 30
    max_batch: int = 64
    max_image_pixels: int = 50_000_000
    max_image_bytes: int = 64 << 20
    max_message_bytes: int = 4 << 20  # gRPC message limit; results stream in chunks below it
    max_request_bytes: int = 64 << 20
