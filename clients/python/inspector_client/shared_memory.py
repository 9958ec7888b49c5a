"""The client's side of the shared-memory transport (the .proto's Conventions): a probe file
that proves to a local server that we read its shm directory, and mapping its result files.

A result file stays mapped while any array of it lives; then it is renamed `inspector-free-<hex>`
so the server can write a later response into its pages (fresh tmpfs pages cost ~0.4 ms per MB
to fill and ~0.15 ms per MB to free, as much as the transfer itself)."""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import secrets
import threading
import weakref

import numpy as np

from .v1 import inspector_pb2 as pb

PROBE_HEADER = "inspector-shm-probe"
TOKEN_HEADER = "inspector-shm-token"
DEFAULT_DIR = "/dev/shm"
_RESULT_NAME = re.compile(r"inspector-[0-9a-f]{32}")


class SharedMemoryError(RuntimeError):
    """A result the server put in shared memory could not be read."""


def is_local_target(target: str) -> bool:
    """A unix socket, localhost or a loopback address ("127.0.0.1:50051", "[::1]:50051")."""
    for prefix in ("dns:///", "ipv4:", "ipv6:"):
        target = target.removeprefix(prefix)
    if target.startswith("unix:"):
        return True
    host = target[1:].split("]", 1)[0] if target.startswith("[") else target.rsplit(":", 1)[0]
    return host in ("localhost", "::1") or host.startswith("127.")


def usable_dir(directory: str) -> bool:
    return os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)


class Probe:
    """Our probe file, created on first use and removed on close() or when the client is gone."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._metadata: tuple[tuple[str, str], ...] | None = None
        self._finalizer: weakref.finalize | None = None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata announcing the probe; () when it cannot be made (calls then stream)."""
        with self._lock:
            if self._metadata is None:
                self._metadata = self._create()
            return self._metadata

    def _create(self) -> tuple[tuple[str, str], ...]:
        path = os.path.join(self.directory, f"inspector-probe-{secrets.token_hex(16)}")
        token = secrets.token_hex(16)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return ()
        self._finalizer = weakref.finalize(self, _remove_probe, path, os.getpid())  # also at exit
        try:
            os.write(fd, token.encode())
        except OSError:
            self.close()
            return ()
        finally:
            os.close(fd)
        return (PROBE_HEADER, path), (TOKEN_HEADER, token)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()


def _remove_probe(path: str, pid: int) -> None:
    if os.getpid() == pid:  # a forked child must not remove its parent's probe
        with contextlib.suppress(OSError):
            os.unlink(path)


class ResultFiles:
    """The result files of one response: each opened and mapped once; every item a view of it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._bases: dict[str, np.ndarray] = {}

    def item_bytes(self, start: pb.ItemStart) -> np.ndarray:
        """The item's bytes as a writable uint8 view of the file's copy-on-write mapping."""
        path, offset = start.shm.path, start.shm.offset
        # only our server's result files: never open (or rename) another path a server names
        if os.path.dirname(path) != self.directory or not _RESULT_NAME.fullmatch(os.path.basename(path)):
            raise SharedMemoryError(f"the server put item {start.name!r} in {path!r}, not a result "
                                    f"file in {self.directory}; shared_memory=False avoids shared memory")
        base = self._bases.get(path)
        if base is None:
            base = self._bases[path] = np.frombuffer(_map(path), np.uint8)
            # when the last array of this file is gone, hand its pages back for reuse
            weakref.finalize(base, _release, path, os.getpid())
        if offset + start.nbytes > len(base):
            raise SharedMemoryError(f"item {start.name!r} lies beyond the end of {path}")
        return base[offset:offset + start.nbytes]


def _map(path: str) -> mmap.mmap:
    """Open and map copy-on-write (arrays stay writable; the file never changes under them)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise SharedMemoryError(
            f"shared memory failed: cannot open the server's result file {path} ({exc.strerror}); "
            "InspectorClient(..., shared_memory=False) streams results over gRPC instead") from exc
    try:
        return mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError) as exc:
        raise SharedMemoryError(f"shared memory failed: cannot map {path} ({exc}); "
                                "InspectorClient(..., shared_memory=False) avoids it") from exc
    finally:
        os.close(fd)


def _release(path: str, pid: int) -> None:
    """No array of the file is left: rename it `inspector-free-<hex>` for the server to reuse.
    (If the server's janitor removed it meanwhile, there is nothing to do.)"""
    if os.getpid() != pid:  # a forked child's copy of the arrays is not ours to release
        return
    directory, name = os.path.split(path)
    with contextlib.suppress(OSError):
        os.rename(path, os.path.join(directory, "inspector-free-" + name.removeprefix("inspector-")))
