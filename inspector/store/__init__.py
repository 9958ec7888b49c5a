"""Model stores: one process's folder (ModelStore) or a store shared by replicas (open_store)."""

from __future__ import annotations

import hashlib
from pathlib import Path

SHARED_PREFIX = "shared:"
S3_PREFIX = "s3:"


def open_store(spec: str | Path, *, cache_dir: str | Path | None = None, endpoint_url: str | None = None,
               region: str | None = None, ttl_s: float | None = None, client=None,
               cache_max_bytes: int | None = None):
    """The model store a `--store` value names.

    - a folder: that folder, for one process (ModelStore), unless a shared store already
      lives there (it has a .inspector-shared marker): then as with `shared:`;
    - `shared:/path`: a folder several processes or machines use at once (ReplicatedStore over
      PosixBackend): names and metadata by compare-and-swap, re-read on every get and list
      (`ttl_s`, default 0);
    - `s3://bucket/prefix`: an S3-compatible bucket (ReplicatedStore over S3Backend, boto3).
      Endpoint, region and credentials from the AWS environment variables unless
      `endpoint_url`/`region` (or a boto3 `client`) are given; model files are used from a
      local verified cache, `cache_dir` (default: the user cache folder, per bucket/prefix);
      the bucket is re-read when the store's view is older than `ttl_s` (default 1 s) or a
      reference is unknown. `cache_max_bytes` bounds the cache (None: unbounded): least
      recently used models nobody holds (`hold`) are evicted and fetched again on next use.

    Nothing is contacted here: a bucket that is not reachable yet shows in `store.ready()`.
    """
    from inspector.store.model_store import SHARED_MARKER, ModelStore
    from inspector.store.replicated import PosixBackend, ReplicatedStore

    text = str(spec)
    if text.startswith(S3_PREFIX):
        from inspector.store.s3 import S3Backend

        bucket, _, prefix = text[len(S3_PREFIX):].lstrip("/").partition("/")
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(text, endpoint_url)
        backend = S3Backend(bucket, prefix, cache, client=client, endpoint_url=endpoint_url, region=region,
                            max_bytes=cache_max_bytes)
        return ReplicatedStore(backend, ttl_s=1.0 if ttl_s is None else ttl_s)
    if text.startswith(SHARED_PREFIX):
        path = text[len(SHARED_PREFIX):]
        path = path[2:] if path.startswith("///") else path  # shared:///mnt/x as a URL
        return ReplicatedStore(PosixBackend(Path(path)), ttl_s=ttl_s or 0.0)
    root = Path(spec)
    if (root / SHARED_MARKER).exists():
        return ReplicatedStore(PosixBackend(root), ttl_s=ttl_s or 0.0)
    return ModelStore(root)


def local_root(spec: str | Path) -> Path | None:
    """The local folder whose model entries vetting.verify_store should check on start (a
    folder or a shared folder), or None for a bucket (its cache is verified on use)."""
    text = str(spec)
    if text.startswith(S3_PREFIX):
        return None
    if text.startswith(SHARED_PREFIX):
        path = text[len(SHARED_PREFIX):]
        return Path(path[2:] if path.startswith("///") else path)
    return Path(spec)


def default_cache_dir(spec: str, endpoint_url: str | None = None) -> Path:
    """Where a bucket's model files are cached on this machine unless told otherwise."""
    import os

    import platformdirs

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    bucket, _, prefix = spec[len(S3_PREFIX):].lstrip("/").partition("/")  # s3://b/p and s3:/b/p alike
    tag = hashlib.sha256(f"{endpoint}|{bucket}|{prefix.strip('/')}".encode()).hexdigest()[:12]
    bucket = bucket or "bucket"
    return Path(platformdirs.user_cache_dir("inspector")) / "s3" / f"{bucket}-{tag}"


def store_from_config(config):
    """open_store for an InspectorConfig: `store_dir` is the spec; the optional fields
    `store_cache_dir`, `store_cache_max_bytes`, `s3_endpoint_url`, `s3_region` and
    `store_refresh_s` tune it when the config has them (absent: the AWS environment variables
    and the defaults)."""
    return open_store(config.store_dir, cache_dir=getattr(config, "store_cache_dir", None),
                      endpoint_url=getattr(config, "s3_endpoint_url", None),
                      region=getattr(config, "s3_region", None), ttl_s=getattr(config, "store_refresh_s", None),
                      cache_max_bytes=getattr(config, "store_cache_max_bytes", None))


def hold(store, ref: str):
    """`store.hold(ref)` (a Hold: release() or a `with` block), or a Hold of nothing for a store
    whose files are never evicted (a plain folder, ModelStore)."""
    method = getattr(store, "hold", None)
    if method is not None:
        return method(ref)
    from inspector.store.replicated import Hold

    return Hold(Path(store.root))


def watch_ready(store, on_change, *, interval_s: float = 2.0):
    """Tell `on_change(ready: bool)` the store's readiness now and whenever it changes, polling
    `store.ready()` every `interval_s` seconds in a daemon thread; set the returned Event to stop.

    For gRPC health: NOT_SERVING until the bucket answers, SERVING after, NOT_SERVING again
    while it cannot be reached."""
    import threading

    stop = threading.Event()

    def poll() -> None:
        last = None
        while True:
            try:
                now = bool(store.ready())
            except Exception:  # noqa: BLE001 - a readiness probe reports, never raises
                now = False
            if now != last:
                on_change(now)
                last = now
            if stop.wait(interval_s):
                return

    threading.Thread(target=poll, name="store-ready", daemon=True).start()
    return stop
