"""The S3 backend of a replicated store (inspector.store.replicated): any S3-compatible bucket.

Keys under `s3://bucket/prefix/`:
  blobs/<id>/<file>      model.onnx and its external data, written once (If-None-Match: *);
                         external data first, model.onnx after it
  manifests/<id>.json    written last, once (If-None-Match: *): the commit point
  names/<sha256>.json    a name's document, replaced by compare-and-swap (If-Match: ETag)
  meta/<id>.json         the model's own metadata, likewise
A deleted document is a tombstone ({"deleted": true}), so that it can be recreated by CAS too.

Each replica keeps the files it uses in a local cache (`cache/<id>/`, with the manifest as
meta.json, the local store's layout), verified against the manifest's sha256 once per process
before use; a copy that does not match is fetched again.

The cache may be bounded (`max_bytes`): before a fetch or an upload brings a model in, the least
recently used models that nobody holds are evicted, whole folders (renamed into this process's
.tmp, then deleted), until the newcomer fits. A model is *held* while a `Hold` (`hold()`) is
open: a shared flock on its cached meta.json, taken before the folder becomes visible (a fetch)
or checked to still be the folder's (a cached copy); eviction takes the lock exclusively without
waiting and skips the model when it cannot, so holds of this process and of other processes
sharing the cache folder alike keep the files. Recency: this process's uses, and meta.json's
mtime (touched on use at most once a minute) for models it has not used since it started. A
model larger than the bound is still fetched (the cache stays above the bound, with a warning).

Endpoint, region and credentials come from the usual AWS environment variables
(AWS_ENDPOINT_URL, AWS_REGION or AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_PROFILE) unless given to S3Backend / open_store.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from inspector.store import tmp_area
from inspector.store.model_store import ID_RE, _fsync, _write_json
from inspector.store.replicated import Conflict, Hold, StoreUnavailable, verify_folder

log = logging.getLogger(__name__)
TOUCH_EVERY_S = 60.0  # how often a use of a cached model is written to its meta.json's mtime
HOLD_ATTEMPTS = 8  # a hold retries while other threads keep evicting the model it wants
_CONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


def make_client(endpoint_url: str | None = None, region: str | None = None, *, timeout_s: float = 60.0,
                attempts: int = 4):
    """A boto3 S3 client: the given endpoint/region, else the AWS environment variables."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(retries={"max_attempts": attempts, "mode": "standard"}, connect_timeout=min(timeout_s, 5.0),
                    read_timeout=timeout_s, s3={"addressing_style": "path" if endpoint else "auto"},
                    # the store checks sha256 itself; plain bodies suit every S3-compatible server
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    return boto3.session.Session().client("s3", endpoint_url=endpoint or None, region_name=region,
                                          config=config)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or str(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


class S3Backend:
    """Models and documents in `s3://bucket/prefix`, files used from a local cache folder."""

    def __init__(self, bucket: str, prefix: str, cache: Path, *, client=None, endpoint_url: str | None = None,
                 region: str | None = None, max_bytes: int | None = None) -> None:
        if not bucket:
            raise ValueError("an S3 store needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.root = Path(cache)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(exist_ok=True)
        tmp_area.sweep(self.tmp)
        self._endpoint, self._region = endpoint_url, region
        self.client = client if client is not None else make_client(endpoint_url, region)
        self._probe = client
        self._verified: set[str] = set()
        self._lock = threading.Lock()
        # the bounded cache (module doc): None = unbounded
        self.max_bytes = max_bytes
        self._used: dict[str, tuple[float, int]] = {}  # id -> (time of the last use, sequence)
        self._touched: dict[str, float] = {}  # id -> when its meta.json mtime was last set
        self._sizes: dict[str, int] = {}  # id -> bytes of its cached folder (immutable content)
        self._seq = itertools.count()
        self._room = threading.Lock()  # one eviction pass at a time in this process

    def __repr__(self) -> str:
        return f"S3Backend(s3://{self.bucket}/{self.prefix}, cache {self.root})"

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _call(self, method: str, **kwargs):
        """One S3 call; transport failures and unexpected errors become StoreUnavailable."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = _code(exc)
            if code in _CONDITION_FAILED:
                raise Conflict(kwargs.get("Key")) from exc
            if code in _MISSING:
                raise FileNotFoundError(kwargs.get("Key")) from exc
            raise StoreUnavailable(f"the model bucket {self.bucket} refused {method}: {code}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"the model bucket {self.bucket} cannot be reached: {exc}") from exc

    # documents
    def read_doc(self, kind: str, key: str) -> tuple[dict | None, str | None]:
        try:
            got = self._call("get_object", Key=self._key(kind, f"{key}.json"))
        except FileNotFoundError:
            return None, None
        doc = json.loads(got["Body"].read())
        return (None if doc.get("deleted") else doc), got["ETag"]

    def write_doc(self, kind: str, key: str, doc: dict | None, token: str | None) -> None:
        body = {**(doc if doc is not None else {"deleted": True}), "rev": uuid.uuid4().hex}
        condition = {"IfMatch": token} if token is not None else {"IfNoneMatch": "*"}
        self._call("put_object", Key=self._key(kind, f"{key}.json"), Body=json.dumps(body).encode(),
                   ContentType="application/json", **condition)

    def list_docs(self, kind: str) -> dict[str, str]:
        return {k.rsplit("/", 1)[1].removesuffix(".json"): etag
                for k, etag in self._list(self._key(kind, "")) if k.endswith(".json")}

    def _list(self, prefix: str) -> list[tuple[str, str]]:
        out, token = [], None
        while True:
            page = self._call("list_objects_v2", Prefix=prefix,
                              **({"ContinuationToken": token} if token else {}))
            out += [(o["Key"], o.get("ETag", "")) for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return out
            token = page["NextContinuationToken"]

    # models
    def model_ids(self) -> set[str]:
        ids = {k.rsplit("/", 1)[1].removesuffix(".json") for k, _ in self._list(self._key("manifests", ""))}
        return {i for i in ids if ID_RE.fullmatch(i)}

    def read_manifest(self, model_id: str) -> dict | None:
        try:
            got = self._call("get_object", Key=self._key("manifests", f"{model_id}.json"))
        except FileNotFoundError:
            return None
        return json.loads(got["Body"].read())

    def commit_model(self, model_id: str, work: Path, manifest: dict) -> dict:
        existing = self.read_manifest(model_id)
        if existing is None:
            files = dict(manifest["files"])
            for rel in sorted(files, key=lambda r: r == "model.onnx"):  # external data first
                files[rel] = self._put_blob(model_id, rel, work / rel, files[rel])
            manifest = {**manifest, "files": files}
            try:
                self._call("put_object", Key=self._key("manifests", f"{model_id}.json"),
                           Body=json.dumps(manifest).encode(), ContentType="application/json",
                           IfNoneMatch="*")
            except Conflict:
                manifest = self.read_manifest(model_id) or manifest  # another replica was first
        else:
            manifest = existing
        self._adopt(model_id, work, manifest)
        return manifest

    def _put_blob(self, model_id: str, rel: str, path: Path, info: dict) -> dict:
        """Upload one file unless its key exists; what the bucket holds under the key."""
        key = self._key("blobs", model_id, rel)
        try:
            with path.open("rb") as body:
                self._call("put_object", Key=key, Body=body, IfNoneMatch="*",
                           Metadata={"sha256": info["sha256"]})
            return info
        except Conflict:  # written before (an earlier try or another replica): the stored bytes win
            head = self._call("head_object", Key=key)
            sha = head.get("Metadata", {}).get("sha256")
            return {"sha256": sha, "size": int(head["ContentLength"])} if sha else info

    def _adopt(self, model_id: str, work: Path, manifest: dict) -> None:
        """Make the uploaded work folder the cached copy (no download) when it matches."""
        folder = self.root / model_id
        if folder.exists() or verify_folder(work, manifest) is not None:
            return
        _write_json(work / "meta.json", manifest)
        self._make_room(_manifest_bytes(manifest), keep=model_id)
        with contextlib.suppress(OSError):
            os.rename(work, folder)
            with self._lock:
                self._verified.add(model_id)
            self._touch(model_id, folder)

    def local_folder(self, model_id: str, manifest: dict) -> Path:
        return self._local(model_id, manifest, hold=False)[0]

    def hold(self, model_id: str, manifest: dict) -> Hold:
        """The model's files, local and verified, kept in the cache until the Hold is released."""
        folder, fd = self._local(model_id, manifest, hold=True)
        return Hold(folder, fd)

    def _local(self, model_id: str, manifest: dict, *, hold: bool) -> tuple[Path, int | None]:
        """(folder, fd of the shared lock when `hold`), fetching the model when it is not cached."""
        folder = self.root / model_id
        for _ in range(HOLD_ATTEMPTS):
            if folder.is_dir():
                fd = _lock_shared(folder / "meta.json") if hold else None
                if hold and fd is None:
                    if folder.is_dir() and not (folder / "meta.json").exists():  # not of this store's making
                        log.warning("cached copy of model %s has no meta.json; fetching it again", model_id[:12])
                        self._discard(folder)
                    continue  # evicted between the look and the lock: fetch it again
                with self._lock:
                    known = model_id in self._verified
                fault = None if known else verify_folder(folder, manifest)
                if fault is None:
                    with self._lock:
                        self._verified.add(model_id)
                    self._touch(model_id, folder)
                    return folder, fd
                _close(fd)
                log.warning("cached copy of model %s is bad (%s); fetching it again", model_id[:12], fault)
                self._discard(folder)
            fetched = self._fetch(model_id, manifest, hold=hold)
            if fetched is not None:
                return folder, fetched[0]
        raise StoreUnavailable(f"model {model_id[:12]} was evicted from the local cache {HOLD_ATTEMPTS} "
                               "times while this server fetched it; the cache bound is too small for the "
                               "models in use at once")

    def _fetch(self, model_id: str, manifest: dict, *, hold: bool) -> tuple[int | None] | None:
        """Download, verify and move the model into the cache: (fd of the shared lock when
        `hold`,), or None when another thread or process put a copy there first."""
        folder = self.root / model_id
        self._make_room(_manifest_bytes(manifest), keep=model_id)
        work = self.tmp / tmp_area.new_name()
        work.mkdir()
        fd = None
        try:
            for rel in manifest["files"]:
                target = work / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self._download(self._key("blobs", model_id, rel), target)
            fault = verify_folder(work, manifest)
            if fault is not None:
                raise StoreUnavailable(f"model {model_id[:12]} in the bucket is damaged: {fault}")
            _write_json(work / "meta.json", manifest)
            fd = _lock_shared(work / "meta.json") if hold else None  # held before anyone can see it
            try:
                os.rename(work, folder)
                _fsync(self.root)
            except OSError:  # another thread or process sharing the cache was first
                if verify_folder(folder, manifest) is not None:
                    raise
                _close(fd)
                fd = None
                return None  # the caller takes (and holds) that copy
        except BaseException:
            _close(fd)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        with self._lock:
            self._verified.add(model_id)
        self._touch(model_id, folder)
        return (fd,)

    # ---- the bounded cache (module doc) ----------------------------------------------------
    def _touch(self, model_id: str, folder: Path) -> None:
        """Record a use: in memory always, on meta.json's mtime at most every TOUCH_EVERY_S."""
        now = time.time()
        with self._lock:
            self._used[model_id] = (now, next(self._seq))
            if now - self._touched.get(model_id, float("-inf")) < TOUCH_EVERY_S:
                return
            self._touched[model_id] = now
        with contextlib.suppress(OSError):
            os.utime(folder / "meta.json", (now, now))

    def cache_entries(self) -> list[tuple[str, int]]:
        """(id, bytes) of every cached model, least recently used first."""
        found = []
        for entry in os.scandir(self.root):
            if not ID_RE.fullmatch(entry.name):
                continue
            try:
                mtime = os.stat(os.path.join(entry.path, "meta.json")).st_mtime
            except OSError:  # not a complete model folder (or evicted just now)
                continue
            with self._lock:
                used, size = self._used.get(entry.name, (0.0, -1)), self._sizes.get(entry.name)
            if size is None:
                size = _folder_bytes(Path(entry.path))
                with self._lock:
                    self._sizes[entry.name] = size
            found.append((max((mtime, -1), used), entry.name, size))
        return [(model_id, size) for _, model_id, size in sorted(found)]

    def cache_bytes(self) -> int:
        """Bytes of the model files cached now (for the metrics gauge)."""
        return sum(size for _, size in self.cache_entries())

    def _make_room(self, incoming: int, *, keep: str) -> None:
        """Evict least recently used models nobody holds until `incoming` more bytes fit."""
        if self.max_bytes is None:
            return
        with self._room:
            entries = [(i, n) for i, n in self.cache_entries() if i != keep]
            total = sum(n for _, n in entries) + incoming
            evicted = []
            for model_id, size in entries:
                if total <= self.max_bytes:
                    break
                if self._evict(model_id):
                    total -= size
                    evicted.append(model_id[:12])
        if evicted:
            log.info("model cache %s: evicted %s (least recently used) to stay under %d bytes",
                     self.root, ", ".join(evicted), self.max_bytes)
        if total > self.max_bytes:
            log.warning("model cache %s holds %d bytes with model %s, above its bound of %d bytes: the "
                        "other cached models are in use (or the model alone is larger than the bound)",
                        self.root, total, keep[:12], self.max_bytes)

    def _evict(self, model_id: str) -> bool:
        """Remove one cached model unless someone holds it; whether it went. Atomic for other
        threads and processes: the folder is renamed into this process's .tmp under the
        exclusive lock, then deleted."""
        folder = self.root / model_id
        marker = folder / "meta.json"
        try:
            fd = os.open(marker, os.O_RDONLY)
        except OSError:
            return False  # gone already (another process evicted or deleted it)
        trash = self.tmp / tmp_area.new_name()
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # held: in use here or in another process sharing the cache
            if not _same_file(fd, marker):
                return False  # replaced by a fresh copy in between
            os.rename(folder, trash)
        except OSError:
            return False
        finally:
            os.close(fd)
        with self._lock:
            self._verified.discard(model_id)
            self._used.pop(model_id, None)
            self._touched.pop(model_id, None)
            self._sizes.pop(model_id, None)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def _download(self, key: str, target: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.download_file(self.bucket, key, str(target))
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"could not fetch {key} from the model bucket: {exc}") from exc

    def _discard(self, folder: Path) -> None:
        """Remove a cached folder whatever holds it (a bad copy, a deleted model)."""
        with self._lock:
            self._sizes.pop(folder.name, None)
        trash = self.tmp / tmp_area.new_name()
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def remove_model(self, model_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # the commit point goes first
            self._call("delete_object", Key=self._key("manifests", f"{model_id}.json"))
        keys = [k for k, _ in self._list(self._key("blobs", model_id, ""))]
        for start in range(0, len(keys), 1000):
            self._call("delete_objects", Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                 "Quiet": True})
        with self._lock:
            self._verified.discard(model_id)
        self._discard(self.root / model_id)

    def ready(self) -> bool:
        """The bucket answers a listing under the prefix (short timeouts, one try)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self._probe is None:
            self._probe = make_client(self._endpoint, self._region, timeout_s=3.0, attempts=1)
        started = time.monotonic()
        try:
            self._probe.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
            return True
        except (ClientError, BotoCoreError) as exc:
            log.info("model bucket %s not ready after %.1f s: %s", self.bucket, time.monotonic() - started, exc)
            return False


def _manifest_bytes(manifest: dict) -> int:
    return sum(int(f["size"]) for f in manifest["files"].values())


def _folder_bytes(folder: Path) -> int:
    total = 0
    for base, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(base, name)).st_size
    return total


def _lock_shared(path: Path) -> int | None:
    """An fd holding a shared flock on `path`, or None when `path` vanished or was replaced
    before the lock was granted (an eviction renamed its folder away)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while an eviction renames the folder
        if _same_file(fd, path):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
