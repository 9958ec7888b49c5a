"""Server and core configuration, one dataclass; the CLI fills it from flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def default_store_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("inspector")) / "models"


@dataclass
class InspectorConfig:
    store_dir: Path | str = field(default_factory=default_store_dir)  # a folder, shared:/path or s3://bucket/prefix
    store_cache_dir: Path | None = None  # s3: where model files are cached locally (default: the user cache)
    store_cache_max_bytes: int | None = None  # s3: evict least recently used models not in use beyond this; None: unbounded
    s3_endpoint_url: str | None = None  # s3: default $AWS_ENDPOINT_URL
    s3_region: str | None = None  # s3: default $AWS_REGION
    store_refresh_s: float | None = None  # shared stores: how old a view of names may be (default per mode)
    model_roots: tuple[Path, ...] = ()  # server-side paths must lie under one of these
    providers: tuple[str, ...] = ("cpu",)  # preference order; "cuda" falls back to cpu
    strict_providers: bool = False  # refuse instead of falling back
    intra_op_threads: int | None = None
    max_sessions: int = 32
    max_session_bytes: int = 4 << 30  # approximate memory of cached sessions (model bytes x factor)
    session_bytes_factor: float = 3.0  # a session costs about this many times its model's bytes
    max_upload_bytes: int = 2 << 30  # also the largest model LoadModel accepts
    max_batch: int = 64
    max_image_pixels: int = 50_000_000
    max_image_bytes: int = 64 << 20
    max_message_bytes: int = 4 << 20  # gRPC message limit; results stream in chunks below it
    max_request_bytes: int = 64 << 20
    max_response_bytes: int = 1 << 30  # all chunks of one streamed result together
    # shared-memory transport for local clients (inspector.service.shared_memory)
    shared_memory: bool = True  # tensors go through files in shm_dir when a local client proves it can read them
    shm_dir: Path = Path("/dev/shm")  # where probes and result files live (the client must use the same)
    shm_max_age_s: float = 60.0  # result files no client opened are removed after this long
    # untrusted models (inspector.store.vetting)
    vetting: bool = True  # check + first load and run in a child process before accepting
    vet_timeout_s: float = 60.0
    vet_memory_bytes: int = 8 << 30  # address-space limit of the vetting child
    max_ir_version: int | None = None  # None: the newest the installed onnx package knows
    max_opset: int | None = None  # default domain; None: the newest the installed onnx knows
    # back-pressure (inspector.service.limits)
    max_concurrent: int = 4  # RPCs executing at once (health and reflection are not counted)
    max_queued: int = 16  # RPCs waiting for a slot; beyond this: RESOURCE_EXHAUSTED
    retry_after_s: float = 1.0  # the hint sent with RESOURCE_EXHAUSTED
    # security (inspector.service.auth, inspector.service.tls)
    auth_tokens: tuple[str, ...] = ()  # empty: no authentication
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate signed by it
