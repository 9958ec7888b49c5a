"""Shared-memory transport for local clients (like Triton's system shared memory): the large
tensors of a response go into one file in the shm directory instead of `ResultChunk.data`;
control stays on gRPC. The handshake is in the .proto's Conventions.

A result file is `<shm dir>/inspector-<32 hex>`, mode 0600, each tensor at a 64-byte aligned
offset. When the client no longer needs one it renames it `inspector-free-<32 hex>`, and a later
response is written into its pages: fresh tmpfs pages cost more to fill and free (~0.4 + 0.15 ms
per MB here) than copying into existing ones (~0.15 ms per MB). A janitor removes result files
nobody opened and free files nobody reused (after `max_age_s`), and keeps at most MAX_FREE free.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import grpc
import numpy as np

from inspector.config import InspectorConfig
from inspector.v1 import inspector_pb2 as pb

log = logging.getLogger("inspector.service")

PROBE_HEADER = "inspector-shm-probe"
TOKEN_HEADER = "inspector-shm-token"
MIN_BYTES = 64 << 10  # smaller items stream: a file costs more than sending them
ALIGN = 64
JANITOR_EVERY_S = 5.0  # the opportunistic janitor runs at most this often
RESULT_NAME = re.compile(r"inspector-[0-9a-f]{32}")
FREE_NAME = re.compile(r"inspector-free-[0-9a-f]{32}")
MAX_FREE = 4  # free files kept for reuse; more are removed when one is claimed
PROBE_NAME = re.compile(r"inspector-probe-[0-9a-f]{32}")
_MAX_TOKEN = 256
# grpc writes IPv6 peers percent-encoded ("ipv6:%5B::1%5D:port"); unquoted before the match
_LOCAL_PEERS = ("ipv4:127.", "ipv6:[::1]:", "ipv6:[::ffff:127.", "unix:")


def is_local_peer(peer: str) -> bool:
    """Loopback TCP or a unix socket: a client that may share this machine's shm directory."""
    return unquote(peer).startswith(_LOCAL_PEERS)


def probe_matches(directory: str, path: str, token: str) -> bool:
    """`path` is a regular probe file directly in `directory`, of our user, holding `token`."""
    if (not token or len(token) > _MAX_TOKEN or os.path.dirname(path) != directory
            or not PROBE_NAME.fullmatch(os.path.basename(path))):
        return False
    try:  # O_NONBLOCK: a FIFO named like a probe must not hang the call
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        # our user: the client can then open the 0600 files we create
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > _MAX_TOKEN:
            return False
        content = os.read(fd, _MAX_TOKEN + 1)
    except OSError:
        return False
    finally:
        os.close(fd)
    return hmac.compare_digest(content, token.encode())


@dataclass(frozen=True)
class ResultFile:
    """One response's file: where each placed item (by index) lies in it."""

    path: str
    refs: dict[int, pb.SharedMemoryRef]

    def discard(self) -> None:
        """Remove the file: the call ended before the client got its messages."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class SharedMemory:
    """The server's side: which calls get shared memory, writing result files, the janitor."""

    def __init__(self, directory: str | os.PathLike, max_age_s: float = 60.0,
                 max_bytes: int | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self.max_age_s, self.max_bytes = max_age_s, max_bytes
        self.bytes_sent = self.files_written = self.files_removed = self.files_reused = 0  # metrics
        self._own: set[str] = set()  # names this process wrote that may still be there
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()
        self._warned = False

    @classmethod
    def from_config(cls, config: InspectorConfig) -> SharedMemory | None:
        if not config.shared_memory:
            return None
        return cls(Path(config.shm_dir), config.shm_max_age_s, config.max_response_bytes)

    def usable(self, context: grpc.ServicerContext) -> bool:
        """The call comes from a local client whose probe proves it reads our shm directory."""
        if not is_local_peer(context.peer()):
            return False
        meta = dict(context.invocation_metadata() or ())
        path, token = meta.get(PROBE_HEADER), meta.get(TOKEN_HEADER)
        return isinstance(path, str) and isinstance(token, str) and probe_matches(self.directory, path, token)

    def place(self, values: Sequence[np.ndarray | bytes]) -> ResultFile | None:
        """Write the large tensors among `values` (contiguous, little-endian) into one new file.

        None when nothing is large enough, the result is over the response limit (streaming
        then fails as usual), or writing fails (e.g. a full shm mount): those calls stream.
        """
        chosen = [(i, v) for i, v in enumerate(values) if isinstance(v, np.ndarray) and v.nbytes >= MIN_BYTES]
        total = sum(v.nbytes for _, v in chosen)
        if not chosen or (self.max_bytes is not None and total > self.max_bytes):
            return None
        offsets, end = [], 0
        for _, v in chosen:
            offsets.append(end)
            end += -(-v.nbytes // ALIGN) * ALIGN
        name = f"inspector-{secrets.token_hex(16)}"
        path = os.path.join(self.directory, name)
        fd = self._reuse(path, end)
        if fd is None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._warn(exc)
                return None
        try:
            for (_, v), offset in zip(chosen, offsets, strict=True):
                _write_at(fd, memoryview(v.reshape(-1).view(np.uint8)), offset)  # no copy in Python
        except OSError as exc:  # ENOSPC shows up here (an mmap would raise SIGBUS instead)
            os.close(fd)
            ResultFile(path, {}).discard()
            self._warn(exc)
            return None
        os.close(fd)
        with self._lock:
            self._own.add(name)
            self.files_written += 1
            self.bytes_sent += total
        self._sweep_now_and_then()
        return ResultFile(path, {i: pb.SharedMemoryRef(path=path, offset=o)
                                 for (i, _), o in zip(chosen, offsets, strict=True)})

    def _free_files(self) -> list[tuple[str, int]]:
        """(path, size) of the free files of our user in the shm directory."""
        uid, free = os.geteuid(), []
        try:
            entries = [e for e in os.scandir(self.directory) if FREE_NAME.fullmatch(e.name)]
        except OSError:
            return []
        for entry in entries:
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_uid == uid:
                    free.append((entry.path, st.st_size))
        return free

    def _reuse(self, path: str, size: int) -> int | None:
        """Claim a free file of ours (the smallest that holds `size` bytes, else the largest) by
        renaming it to `path`; its descriptor, or None when there is none to claim."""
        uid = os.geteuid()
        free = [(n < size, n if n >= size else -n, p) for p, n in self._free_files()]
        free.sort()
        for rank, (_, _, candidate) in enumerate(free):
            try:
                os.rename(candidate, path)  # atomic: two servers cannot both claim it
                fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != uid:  # swapped meanwhile: not ours to write
                os.close(fd)
                continue
            if st.st_size > 2 * size + (1 << 20):  # a much larger one: give the surplus pages back
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
            for _, _, extra in free[rank + 1 + MAX_FREE:]:  # more free files than anyone reuses
                with contextlib.suppress(OSError):
                    os.unlink(extra)
            with self._lock:
                self.files_reused += 1
            return fd
        return None

    def sweep(self, max_age_s: float | None = None) -> int:
        """Remove our result files older than `max_age_s` (default: the configured age); how many."""
        cutoff = time.time() - (self.max_age_s if max_age_s is None else max_age_s)
        uid, removed, present = os.geteuid(), 0, set()
        with self._lock:
            own_before = set(self._own)
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return 0
        for entry in entries:
            if not (RESULT_NAME.fullmatch(entry.name) or FREE_NAME.fullmatch(entry.name)):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_uid == uid and st.st_mtime <= cutoff:
                    os.unlink(entry.path)
                    removed += 1
                else:
                    present.add(entry.name)
            except OSError:  # taken by its client meanwhile
                continue
        with self._lock:
            self._own -= own_before - present
            self.files_removed += removed
        if removed:
            log.info("removed %d shared-memory file(s) no client opened or nobody reused", removed)
        return removed

    def close(self) -> None:
        """On server stop: remove every file of ours still there and the free ones (nobody will
        read or reuse them now)."""
        with self._lock:
            own, self._own = self._own, set()
        removed = 0
        for path in [os.path.join(self.directory, name) for name in own] + [p for p, _ in self._free_files()]:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed += 1
        with self._lock:
            self.files_removed += removed
        self.sweep()

    def _sweep_now_and_then(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_sweep < JANITOR_EVERY_S:
                return
            self._last_sweep = now
        self.sweep()

    def _warn(self, exc: OSError) -> None:
        """Log the first failure at warning level (a full mount would repeat it every call)."""
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "shared memory in %s failed (%s); streaming instead", self.directory, exc)


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n
