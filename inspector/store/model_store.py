"""Models on disk, addressed by the sha256 of their .onnx bytes, with names as aliases.

Layout: root/<sha256>/model.onnx (+ external data files) + meta.json. Every write happens in
root/.tmp/<host>-<pid>-<random>/ and becomes visible by one os.rename of the whole folder, so a
crash leaves the complete entry or nothing; on start, .tmp loses what dead processes left
(tmp_area.sweep), never the work of another live process. One process owns a folder's names and
metadata; for several processes or machines see inspector.store.replicated (open_store).

Names are aliases: several may point at one id, and each carries its own metadata (the core
keeps a preprocessing spec and a provider preference there). Loading the same bytes under a new
name adds that name and never changes another; a name held by another model moves only when
asked (`replace=True`), else the call is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from inspector import errors
from inspector.store import tmp_area
from inspector.store.external_data import external_locations, safe_source

log = logging.getLogger(__name__)
ID_RE = re.compile(r"[0-9a-f]{64}")
SHARED_MARKER = ".inspector-shared"  # a folder written by inspector.store.replicated (another layout)
HEX_RE = re.compile(r"[0-9a-fA-F]{8,64}")


@dataclass(frozen=True)
class StoredModel:
    """One stored model as a reference sees it: by name, `name` is that name and `metadata` the
    model's merged with the name's own; by id, the first name and the model's metadata alone."""

    id: str
    name: str | None
    path: Path
    size_bytes: int
    created: float
    metadata: dict = field(default_factory=dict)
    names: tuple[str, ...] = ()  # every name of the model, oldest first


@dataclass(frozen=True)
class _Entry:
    id: str
    path: Path
    size_bytes: int
    created: float
    metadata: dict  # the model's own (a name's metadata overrides it field by field)
    names: dict  # name -> {"metadata": {...}, "updated": time}

    def view(self, name: str | None = None) -> StoredModel:
        """As `name` sees it; by id, as its first name does (the model's own metadata when none)."""
        name = name if name is not None else next(iter(self.names), None)
        meta = dict(self.metadata)
        if name is not None:
            meta.update(self.names[name]["metadata"])
        return StoredModel(self.id, name, self.path, self.size_bytes, self.created, meta, tuple(self.names))


class ModelStore:
    """Content-addressed model files under `root`; safe for threads of one process."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.root / SHARED_MARKER).exists():
            raise ValueError(f"{self.root} is a shared model store; open it with "
                             "inspector.store.open_store (or 'shared:' before the path)")
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(exist_ok=True)
        tmp_area.sweep(self._tmp, unknown_stale_s=0)  # what dead processes left; never live work
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._names: dict[str, str] = {}  # name -> id
        self._restore()

    def put_bytes(self, chunks: Iterable[bytes], *, name: str | None = None, metadata: dict | None = None,
                  max_bytes: int | None = None, replace: bool = False) -> StoredModel:
        """Store a model streamed as chunks; same bytes again return the same entry (with `name`
        added). `metadata` belongs to `name`, or to the model itself when no name is given."""
        _check_name(name)
        work = self._workdir()
        try:
            return self._commit(work, stage_upload(chunks, work, max_bytes), name, metadata, replace)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def put_path(self, path: Path, *, name: str | None = None,
                 metadata: dict | None = None, replace: bool = False) -> StoredModel:
        """Copy a model file and the external-data files it references (inside its folder only)."""
        _check_name(name)
        work = self._workdir()
        try:
            return self._commit(work, stage_path(Path(path), work), name, metadata, replace)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def get(self, ref: str) -> StoredModel:
        """By id, by name, or by a unique id prefix of at least 8 hex digits."""
        with self._lock:
            if ref in self._entries:
                return self._entries[ref].view()
            if ref in self._names:
                return self._entries[self._names[ref]].view(ref)
            if HEX_RE.fullmatch(ref):
                hits = [i for i in self._entries if i.startswith(ref.lower())]
                if len(hits) == 1:
                    return self._entries[hits[0]].view()
                if hits:
                    raise errors.InvalidArgument(
                        f"model id prefix '{ref}' matches {len(hits)} models; give more digits",
                        field="model")
        raise errors.NotFound(
            f"no stored model has the id or name '{ref}'; list the stored models to see their "
            "ids and names, or upload the model first", field="model")

    def list(self) -> list[StoredModel]:
        """Every stored model (one per id), oldest first."""
        with self._lock:
            return [e.view() for e in sorted(self._entries.values(), key=lambda e: (e.created, e.id))]

    def delete(self, ref: str) -> StoredModel:
        """By name: remove that name (and the model with its last name). By id: remove the model
        and every name. Returns what the reference saw."""
        with self._lock:
            seen = self.get(ref)
            entry = self._entries[seen.id]
            if ref in self._names and len(entry.names) > 1:
                names = {k: v for k, v in entry.names.items() if k != ref}
                self._save(dataclasses.replace(entry, names=names))
                return seen
            trash = self._tmp / tmp_area.new_name()
            os.rename(self.root / entry.id, trash)  # atomic: gone for a restart from here on
            _fsync(self.root)
            del self._entries[entry.id]
            for name in entry.names:
                if self._names.get(name) == entry.id:
                    del self._names[name]
        shutil.rmtree(trash, ignore_errors=True)
        return seen

    def ready(self) -> bool:
        """Whether the store can be used now (its folder is there)."""
        return self.root.is_dir()

    def update_metadata(self, ref: str, metadata: dict) -> StoredModel:
        """Set fields of the model's own metadata (names keep theirs)."""
        with self._lock:
            entry = self._entries[self.get(ref).id]
            return self._save(dataclasses.replace(entry, metadata={**entry.metadata, **metadata})).view()

    def _commit(self, work: Path, files: dict[str, dict], name: str | None,
                metadata: dict | None, replace: bool = False) -> StoredModel:
        """Make a finished work folder (its `files`, from stage_upload/stage_path) the entry of
        model.onnx's sha256, or update the entry it duplicates.

        A name moving from another model is written to the new holder first, so a crash in
        between leaves it on both; the restore gives it to the newest (see _restore).
        """
        digest, size = files["model.onnx"]["sha256"], sum(f["size"] for f in files.values())
        with self._lock:
            previous = self._names.get(name) if name is not None else None
            if previous is not None and previous != digest and not replace:
                raise errors.FailedPrecondition(
                    f"the name '{name}' belongs to model {previous[:12]}; choose another name, remove "
                    "it first, or move it explicitly (replace)", field="name")
            entry = self._entries.get(digest)
            stamp = time.time()
            if entry is None:
                names = {name: {"metadata": dict(metadata or {}), "updated": stamp}} if name is not None else {}
                entry = _Entry(digest, self.root / digest / "model.onnx", size, stamp,
                               {} if name is not None else dict(metadata or {}), names)
                _write_json(work / "meta.json", _meta(entry))
                os.rename(work, self.root / digest)
                _fsync(self.root)
                self._index(entry)
            elif name is not None:
                names = dict(entry.names)
                names[name] = {"metadata": dict(metadata or {}) if metadata is not None
                               else dict(names.get(name, {}).get("metadata", {})), "updated": stamp}
                entry = self._save(dataclasses.replace(entry, names=names))
            elif metadata is not None:
                entry = self._save(dataclasses.replace(entry, metadata={**entry.metadata, **metadata}))
            if previous is not None and previous != digest:
                old = self._entries[previous]
                self._save(dataclasses.replace(old, names={k: v for k, v in old.names.items() if k != name}))
            return entry.view(name)

    def _save(self, entry: _Entry) -> _Entry:
        """Atomically rewrite an entry's meta.json and update the index."""
        tmp = self._tmp / tmp_area.new_name(".json")
        _write_json(tmp, _meta(entry))
        os.replace(tmp, self.root / entry.id / "meta.json")
        self._index(entry)
        return entry

    def _index(self, entry: _Entry) -> None:
        """Record `entry` in memory; it holds its names from now on."""
        old = self._entries.get(entry.id)
        if old is not None:
            for name in old.names:
                if name not in entry.names and self._names.get(name) == entry.id:
                    del self._names[name]
        for name in entry.names:
            self._names[name] = entry.id
        self._entries[entry.id] = entry

    def _workdir(self) -> Path:
        work = self._tmp / tmp_area.new_name()
        work.mkdir()
        return work

    def _restore(self) -> None:
        """Load every complete entry; a name claimed twice (crash mid-move) goes to the newest."""
        claims: dict[str, tuple[float, str]] = {}
        for folder in self.root.iterdir():
            if not ID_RE.fullmatch(folder.name) or not (folder / "model.onnx").is_file():
                continue
            try:
                meta = json.loads((folder / "meta.json").read_text())
                names = dict(meta.get("names") or {})
                if meta.get("name") and not names:  # an entry written before names were aliases
                    names = {meta["name"]: {"metadata": {}, "updated": float(meta.get("updated", 0.0))}}
                entry = _Entry(folder.name, folder / "model.onnx", int(meta["size_bytes"]),
                               float(meta["created"]), dict(meta.get("metadata") or {}), names)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("skipping model folder %s: unreadable meta.json (%s)", folder.name, exc)
                continue
            self._entries[entry.id] = entry
            for name, held in entry.names.items():
                stamp = float(held.get("updated", entry.created))
                if name not in claims or claims[name][0] < stamp:
                    claims[name] = (stamp, entry.id)
        for name, (_, holder) in claims.items():
            self._names[name] = holder
        for entry in list(self._entries.values()):
            lost = [n for n in entry.names if self._names.get(n) != entry.id]
            if lost:
                self._entries[entry.id] = dataclasses.replace(
                    entry, names={k: v for k, v in entry.names.items() if k not in lost})


def _check_name(name: str | None) -> None:
    """Names are short printable labels that cannot be mistaken for an id."""
    if name is None:
        return
    if not name or len(name) > 200 or not name.isprintable() or name != name.strip():
        raise errors.InvalidArgument(
            "a model name must be 1-200 printable characters without leading/trailing spaces",
            field="name")
    if HEX_RE.fullmatch(name):
        raise errors.InvalidArgument(
            f"the name '{name}' looks like a model id; add a letter other than a-f", field="name")


def stage_upload(chunks: Iterable[bytes], work: Path, max_bytes: int | None) -> dict[str, dict]:
    """An uploaded model written into the work folder `work` (model.onnx); its files as a manifest
    lists them ({relative path: {"sha256", "size"}}). An upload cannot carry external data."""
    digest, size = _write_stream(chunks, work / "model.onnx", max_bytes)
    if external_locations(_parse(work / "model.onnx")):
        raise errors.InvalidArgument(
            "this model keeps its weights in external data files, which an upload cannot "
            "carry; add it from its folder (put_path) or save it with the weights inside")
    return {"model.onnx": {"sha256": digest, "size": size}}


def stage_path(path: Path, work: Path) -> dict[str, dict]:
    """The model file at `path` and the external-data files it references (inside its folder
    only) copied into `work`; their files as stage_upload gives them, model.onnx first."""
    if not path.is_file():
        raise errors.InvalidArgument(f"there is no model file at '{path}'", field="path")
    with path.open("rb") as src:
        digest, size = _write_stream(iter(lambda: src.read(1 << 20), b""), work / "model.onnx", None)
    files = {"model.onnx": {"sha256": digest, "size": size}}
    for location in external_locations(_parse(work / "model.onnx")):
        target = work / location
        target.parent.mkdir(parents=True, exist_ok=True)
        with safe_source(path.parent, location).open("rb") as src:
            sha, n = _write_stream(iter(lambda s=src: s.read(1 << 20), b""), target, None)
        files[location] = {"sha256": sha, "size": n}
    return files


def _write_stream(chunks: Iterable[bytes], target: Path, max_bytes: int | None) -> tuple[str, int]:
    """Write chunks to `target` while hashing; fsync; (sha256 hex, size)."""
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        for chunk in chunks:
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise errors.ResourceExhausted(
                    f"the model is larger than the upload limit of {max_bytes} bytes", field="model")
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _parse(path: Path) -> onnx.ModelProto:
    """The model's proto without external data; InvalidArgument unless it looks like a model."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends; the cause is the bytes
        raise errors.InvalidArgument(
            "the data is not an ONNX model (it does not parse as onnx.ModelProto)", field="model"
        ) from exc
    if not model.graph.node or not model.opset_import:
        raise errors.InvalidArgument(
            "the data is an empty or incomplete ONNX model (no graph nodes or no opset_import)",
            field="model")
    return model


def _meta(entry: _Entry) -> dict:
    return {"id": entry.id, "names": entry.names, "size_bytes": entry.size_bytes,
            "created": entry.created, "updated": time.time(), "metadata": entry.metadata}


def _write_json(path: Path, data: dict) -> None:
    try:
        text = json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidArgument(f"model metadata must be JSON: {exc}", field="metadata") from exc
    with path.open("w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def _fsync(path: Path) -> None:
    """fsync a file or a directory (so a rename inside it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
