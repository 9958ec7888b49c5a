"""A model store several server processes use at once: a shared POSIX folder or an S3 bucket.

The public API is ModelStore's (put_bytes, put_path, get, list, delete, update_metadata, root,
StoredModel), over a backend that holds three kinds of things:

- **models**, immutable and content-addressed: the files of a model (model.onnx, external
  data) under its sha256, then a manifest (id, size, created, sha256 of every file) written
  last and only if absent: the manifest is the commit point; a model without one does not exist;
- **names**, one small document each (name -> {id, metadata, updated, since}), changed only by
  compare-and-swap, so two replicas moving or adding names at once never lose one;
- **the model's own metadata** (the core's "differentiability" verdict, the metadata of a model
  stored without a name), one document per model, also changed by compare-and-swap.

The backend is the source of truth: `list` reads it, `get` reads it when its view is older than
`ttl_s` or when it does not know the reference. `entry.path` is always a local file with its
external data beside it (the shared folder itself, or the S3 backend's verified local cache).

Backends: `PosixBackend` here (a folder on a local or network file system) and
`inspector.store.s3.S3Backend`. `open_store` (inspector.store) picks one from a spec.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import random
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from inspector import errors
from inspector.store import tmp_area
from inspector.store.model_store import (
    HEX_RE,
    ID_RE,
    SHARED_MARKER,
    StoredModel,
    _check_name,
    _fsync,
    _write_json,
    stage_path,
    stage_upload,
)

log = logging.getLogger(__name__)
LAYOUT = 1
CAS_ATTEMPTS = 64


class Conflict(Exception):
    """A compare-and-swap lost: the document changed since it was read."""


class StoreUnavailable(errors.InspectorError):
    """The shared store (bucket, network folder) cannot be reached now; retry later."""

    code = "UNAVAILABLE"


class Hold:
    """A model's local files kept in place until `release()` (or the end of a `with` block).

    For an S3 store it is an open fd with a shared flock on the cached copy's meta.json: the
    bounded cache never evicts a held model (inspector.store.s3); other stores' files are not
    evicted at all, and their holds hold nothing (fd None). Releasing twice is harmless."""

    def __init__(self, folder: Path, fd: int | None = None) -> None:
        self.folder = folder
        self._fd = fd
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Backend(Protocol):
    """Where a replicated store keeps its models and documents (see the module doc)."""

    root: Path  # a local folder: the models' files, ready for onnx.load
    tmp: Path  # this backend's temporary area (tmp_area names)

    def read_doc(self, kind: str, key: str) -> tuple[dict | None, str | None]:
        """(document or None, token for write_doc); a deleted document may keep a token."""

    def write_doc(self, kind: str, key: str, doc: dict | None, token: str | None) -> None:
        """Replace (None: delete) the document if its token is still `token` (None: absent);
        Conflict otherwise."""

    def list_docs(self, kind: str) -> dict[str, str]:
        """key -> a value that changes whenever the document does."""

    def model_ids(self) -> set[str]:
        """Ids of every committed model."""

    def read_manifest(self, model_id: str) -> dict | None: ...

    def commit_model(self, model_id: str, work: Path, manifest: dict) -> dict:
        """Store the files of `work` (listed in manifest["files"]) and then the manifest, unless
        the model exists; the manifest in force."""

    def local_folder(self, model_id: str, manifest: dict) -> Path:
        """A local folder holding the model's files, verified against the manifest."""

    def remove_model(self, model_id: str) -> None: ...

    def ready(self) -> bool: ...


class ReplicatedStore:
    """ModelStore's API over a shared backend; safe for threads and for processes (replicas)."""

    def __init__(self, backend: Backend, *, ttl_s: float = 0.0) -> None:
        self.backend = backend
        self.root = backend.root
        self.ttl_s = ttl_s
        self._lock = threading.RLock()
        self._docs: dict[str, dict[str, tuple[str, dict | None, str | None]]] = {"names": {}, "meta": {}}
        self._manifests: dict[str, dict] = {}
        self._refreshed = float("-inf")

    # ---- ModelStore's API -----------------------------------------------------------------
    def put_bytes(self, chunks: Iterable[bytes], *, name: str | None = None, metadata: dict | None = None,
                  max_bytes: int | None = None, replace: bool = False) -> StoredModel:
        """As ModelStore.put_bytes."""
        _check_name(name)
        work = self._workdir()
        try:
            return self._commit(work, stage_upload(chunks, work, max_bytes), name, metadata, replace)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def put_path(self, path: Path, *, name: str | None = None,
                 metadata: dict | None = None, replace: bool = False) -> StoredModel:
        """As ModelStore.put_path (external data inside the model's folder only)."""
        _check_name(name)
        work = self._workdir()
        try:
            return self._commit(work, stage_path(Path(path), work), name, metadata, replace)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def get(self, ref: str) -> StoredModel:
        """By id, name or unique id prefix (>= 8 hex digits); the files are local on return."""
        model_id, name = self._resolve(ref)
        with self._lock:
            manifest = self._manifests[model_id]
            view = self._view(model_id, name)
        folder = self.backend.local_folder(model_id, manifest)
        return dataclasses.replace(view, path=folder / "model.onnx")

    def hold(self, ref: str) -> Hold:
        """Keep the model's local files until the Hold is released (S3: its cached copy is not
        evicted; fetched again first if it was); for whoever reads them later, e.g. an open model
        whose sessions load from `entry.path`."""
        model_id, _ = self._resolve(ref)
        with self._lock:
            manifest = self._manifests[model_id]
        held = getattr(self.backend, "hold", None)
        if held is not None:
            return held(model_id, manifest)
        return Hold(self.backend.local_folder(model_id, manifest))

    def cache_bytes(self) -> int | None:
        """Bytes of this replica's local cache of model files (S3), None when it has none."""
        measure = getattr(self.backend, "cache_bytes", None)
        return measure() if measure is not None else None

    def list(self) -> list[StoredModel]:
        """Every stored model (one per id), oldest first, as the backend holds them now."""
        self._refresh(force=True)
        with self._lock:
            ids = sorted(self._manifests, key=lambda i: (self._manifests[i]["created"], i))
            return [self._view(i, None) for i in ids]

    def delete(self, ref: str) -> StoredModel:
        """By name: that name (the model goes with its last one); by id: the model and its names."""
        self._refresh(force=True)
        model_id, name = self._resolve(ref)
        with self._lock:
            seen = self._view(model_id, name)
        if name is not None and len(seen.names) > 1:
            self._drop_name(name, model_id)
        else:
            for held in seen.names:
                self._drop_name(held, model_id)
            self._cas("meta", model_id, lambda doc: None)
            self.backend.remove_model(model_id)
        self._refresh(force=True)
        return seen

    def update_metadata(self, ref: str, metadata: dict) -> StoredModel:
        """Set fields of the model's own metadata (names keep theirs), by compare-and-swap."""
        model_id, _ = self._resolve(ref)
        self._merge_metadata(model_id, metadata)
        self._refresh(force=True)
        with self._lock:
            return self._view(model_id, None)

    def ready(self) -> bool:
        """Whether the backend (bucket, folder) can be reached now."""
        try:
            return self.backend.ready()
        except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
            log.warning("model store not ready: %s", exc)
            return False

    # ---- writes ---------------------------------------------------------------------------
    def _commit(self, work: Path, files: dict[str, dict], name: str | None,
                metadata: dict | None, replace: bool) -> StoredModel:
        digest = files["model.onnx"]["sha256"]  # the model's id
        _check_json(metadata)
        if name is not None and not replace:
            self._check_free(name, digest)  # fail before uploading anything
        size = sum(f["size"] for f in files.values())
        manifest = {"id": digest, "size_bytes": size, "created": time.time(), "files": files,
                    "layout": LAYOUT}
        self.backend.commit_model(digest, work, manifest)
        if name is not None:
            self._set_name(name, digest, metadata, replace)
        elif metadata is not None:
            self._merge_metadata(digest, metadata)
        return self._stored(digest, name)

    def _stored(self, digest: str, name: str | None) -> StoredModel:
        """The entry as `name` (None: its id) sees it right after this process stored it."""
        self._refresh(force=True)
        with self._lock:
            manifest = self._manifests.get(digest)
            if manifest is None:
                raise errors.NotFound(f"model {digest[:12]} was removed while it was being stored",
                                      field="model")
            view = self._view(digest, name)
        folder = self.backend.local_folder(digest, manifest)
        return dataclasses.replace(view, path=folder / "model.onnx")

    def _check_free(self, name: str, digest: str) -> None:
        doc, _ = self.backend.read_doc("names", name_key(name))
        holder = self._live_holder(doc)
        if holder is not None and holder != digest:
            raise _taken(name, holder)

    def _live_holder(self, doc: dict | None) -> str | None:
        """The model a name document points at, if that model still exists."""
        if doc is None:
            return None
        held = doc.get("id")
        with self._lock:
            known = held in self._manifests
        if known or (held and self.backend.read_manifest(held) is not None):
            return held
        return None

    def _set_name(self, name: str, digest: str, metadata: dict | None, replace: bool) -> None:
        def change(doc: dict | None) -> dict:
            holder = self._live_holder(doc)
            if holder is not None and holder != digest and not replace:
                raise _taken(name, holder)
            now = time.time()
            same = doc is not None and doc.get("id") == digest
            kept = dict(doc.get("metadata") or {}) if same else {}
            return {"name": name, "id": digest, "updated": now,
                    "since": float(doc.get("since", now)) if same else now,
                    "metadata": dict(metadata) if metadata is not None else kept}

        self._cas("names", name_key(name), change)

    def _drop_name(self, name: str, model_id: str) -> None:
        self._cas("names", name_key(name),
                  lambda doc: None if doc is not None and doc.get("id") == model_id else _UNCHANGED)

    def _merge_metadata(self, model_id: str, metadata: dict) -> None:
        _check_json(metadata)
        self._cas("meta", model_id, lambda doc: {
            "id": model_id, "updated": time.time(),
            "metadata": {**((doc or {}).get("metadata") or {}), **metadata}})

    def _cas(self, kind: str, key: str, change) -> None:
        """Read, change, write back unless someone wrote in between (then again)."""
        for attempt in range(CAS_ATTEMPTS):
            doc, token = self.backend.read_doc(kind, key)
            new = change(doc)
            if new is _UNCHANGED or (new is None and doc is None):
                return
            try:
                self.backend.write_doc(kind, key, new, token)
                return
            except Conflict:
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise StoreUnavailable(f"the {kind} entry changed {CAS_ATTEMPTS} times while this server "
                               "tried to update it; retry")

    def _workdir(self) -> Path:
        work = self.backend.tmp / tmp_area.new_name()
        work.mkdir(parents=True)
        return work

    # ---- reads ----------------------------------------------------------------------------
    def _resolve(self, ref: str) -> tuple[str, str | None]:
        """(id, name or None) of a reference; a miss reads the backend again before NotFound."""
        self._refresh(force=False)
        try:
            return self._lookup(ref)
        except errors.NotFound:
            self._refresh(force=True)
            return self._lookup(ref)

    def _lookup(self, ref: str) -> tuple[str, str | None]:
        with self._lock:
            if ref in self._manifests:
                return ref, None
            doc = self._names().get(ref)
            if doc is not None:
                return doc["id"], ref
            if HEX_RE.fullmatch(ref):
                hits = [i for i in self._manifests if i.startswith(ref.lower())]
                if len(hits) == 1:
                    return hits[0], None
                if hits:
                    raise errors.InvalidArgument(
                        f"model id prefix '{ref}' matches {len(hits)} models; give more digits",
                        field="model")
        raise errors.NotFound(
            f"no stored model has the id or name '{ref}'; list the stored models to see their "
            "ids and names, or upload the model first", field="model")

    def _names(self) -> dict[str, dict]:
        """name -> document, for names of models that exist."""
        out = {}
        for _, doc, _ in self._docs["names"].values():
            if doc is not None and doc.get("id") in self._manifests and isinstance(doc.get("name"), str):
                out[doc["name"]] = doc
        return out

    def _view(self, model_id: str, name: str | None) -> StoredModel:
        manifest = self._manifests[model_id]
        held = sorted((d for d in self._names().values() if d["id"] == model_id),
                      key=lambda d: (float(d.get("since", 0.0)), d["name"]))
        names = tuple(d["name"] for d in held)
        name = name if name is not None else (names[0] if names else None)
        meta_doc = self._docs["meta"].get(model_id, ("", None, None))[1] or {}
        meta = dict(meta_doc.get("metadata") or {})
        if name is not None:
            own = next((d for d in held if d["name"] == name), None)
            meta.update((own or {}).get("metadata") or {})
        return StoredModel(model_id, name, self.root / model_id / "model.onnx", int(manifest["size_bytes"]),
                           float(manifest["created"]), meta, names)

    def _refresh(self, *, force: bool) -> None:
        """Read what changed in the backend (documents first, then models: a name written after
        its model's commit never shows up before the model)."""
        with self._lock:
            if not force and time.monotonic() - self._refreshed < self.ttl_s:
                return
            for kind, cache in self._docs.items():
                listing = self.backend.list_docs(kind)
                for key, hint in listing.items():
                    if key not in cache or cache[key][0] != hint:
                        doc, token = self.backend.read_doc(kind, key)
                        cache[key] = (hint, doc, token)
                for key in set(cache) - set(listing):
                    del cache[key]
            ids = self.backend.model_ids()
            for model_id in ids - set(self._manifests):
                manifest = self.backend.read_manifest(model_id)
                if manifest is not None:
                    self._manifests[model_id] = manifest
            for model_id in set(self._manifests) - ids:
                del self._manifests[model_id]
            self._refreshed = time.monotonic()


_UNCHANGED = object()


def _check_json(metadata: dict | None) -> None:
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidArgument(f"model metadata must be JSON: {exc}", field="metadata") from exc


def name_key(name: str) -> str:
    """The document key of a name (names may hold any printable character; keys may not)."""
    return hashlib.sha256(name.encode()).hexdigest()


def _taken(name: str, holder: str) -> errors.FailedPrecondition:
    return errors.FailedPrecondition(
        f"the name '{name}' belongs to model {holder[:12]}; choose another name, remove "
        "it first, or move it explicitly (replace)", field="name")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_folder(folder: Path, manifest: dict) -> str | None:
    """Why `folder` does not hold the manifest's files (missing, size, sha256), or None."""
    for rel, info in manifest["files"].items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != info["size"] or file_sha256(path) != info["sha256"]:
            return f"the bytes of {rel} do not match the manifest"
    return None


class PosixBackend:
    """A folder that several processes (and machines, over NFS) use at once.

    Layout: root/<id>/ (model.onnx, external data, meta.json = the manifest; made visible by one
    rename of a complete folder, the commit point), root/.names/<sha256 of name>.json,
    root/.meta/<id>.json (documents replaced by rename, under an flock of root/.lock; each
    carries a random `rev`, the compare-and-swap token), root/.tmp/<host>-<pid>-<random>,
    root/.inspector-shared (marks the layout). The model folders are those of the local
    layout, so vetting.verify_store checks and quarantines them the same way.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / SHARED_MARKER
        if not marker.exists():
            local = [p.name for p in self.root.iterdir() if ID_RE.fullmatch(p.name)]
            if local:
                raise ValueError(f"{self.root} holds a local model store ({len(local)} models); "
                                 "a shared store needs an empty or shared folder")
        self.tmp = self.root / ".tmp"
        for folder in (self.tmp, self.root / ".names", self.root / ".meta"):
            folder.mkdir(exist_ok=True)
        if not marker.exists():
            scratch = self.tmp / tmp_area.new_name(".json")
            _write_json(scratch, {"layout": LAYOUT})
            with contextlib.suppress(FileExistsError):
                os.link(scratch, marker)  # atomic: the first process to get here writes it
            scratch.unlink()
        tmp_area.sweep(self.tmp)

    # documents
    def _doc(self, kind: str, key: str) -> Path:
        return self.root / f".{kind}" / f"{key}.json"

    def read_doc(self, kind: str, key: str) -> tuple[dict | None, str | None]:
        try:
            doc = json.loads(self._doc(kind, key).read_text())
        except FileNotFoundError:
            return None, None
        return doc, doc.get("rev")

    def write_doc(self, kind: str, key: str, doc: dict | None, token: str | None) -> None:
        path = self._doc(kind, key)
        with self._locked():
            _, current = self.read_doc(kind, key)
            if current != token:
                raise Conflict(key)
            if doc is None:
                path.unlink(missing_ok=True)
            else:
                scratch = self.tmp / tmp_area.new_name(".json")
                _write_json(scratch, {**doc, "rev": uuid.uuid4().hex})
                os.replace(scratch, path)
            _fsync(path.parent)

    def list_docs(self, kind: str) -> dict[str, str]:
        out = {}
        for entry in os.scandir(self.root / f".{kind}"):
            if entry.name.endswith(".json"):
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat()
                    out[entry.name[:-5]] = f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
        return out

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock over every document write (released if the process dies)."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # models
    def model_ids(self) -> set[str]:
        return {e.name for e in os.scandir(self.root)
                if ID_RE.fullmatch(e.name) and os.path.isfile(os.path.join(e.path, "meta.json"))}

    def read_manifest(self, model_id: str) -> dict | None:
        try:
            manifest = json.loads((self.root / model_id / "meta.json").read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except ValueError as exc:
            log.warning("model folder %s: unreadable meta.json (%s)", model_id, exc)
            return None
        return manifest if isinstance(manifest.get("files"), dict) else None

    def commit_model(self, model_id: str, work: Path, manifest: dict) -> dict:
        existing = self.read_manifest(model_id)
        if existing is not None:
            return existing
        _write_json(work / "meta.json", manifest)
        try:
            os.rename(work, self.root / model_id)  # a complete folder, or nothing
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            existing = self.read_manifest(model_id)  # another process committed it first
            if existing is None:
                raise errors.FailedPrecondition(
                    f"the store folder {model_id[:12]} exists without a manifest; remove it or "
                    "restart a server to quarantine it", field="model") from exc
            return existing
        _fsync(self.root)
        return manifest

    def local_folder(self, model_id: str, manifest: dict) -> Path:
        return self.root / model_id

    def remove_model(self, model_id: str) -> None:
        trash = self.tmp / tmp_area.new_name()
        try:
            os.rename(self.root / model_id, trash)
        except FileNotFoundError:
            return
        _fsync(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    def ready(self) -> bool:
        return self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)
