"""Per-process temporary names under a store's .tmp folder, and a sweep that respects them.

Every temporary folder or file is named `<host>-<pid>-<random>` so that several server
processes (on one machine or on several, over a shared folder) can use one .tmp: a process
removes only what it can prove abandoned, never another live process's work in flight:

- its own host's entries whose process is gone (the pid is dead, or was reused by a process
  that started after the entry was last written);
- entries of other hosts (whose pids it cannot check) and entries with any other name only
  when nothing in them was written for `stale_s` seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

STALE_S = 3600.0
_NAME_RE = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-(?P<rand>[0-9a-f]{32})(?:\.[a-z]+)?")


def host() -> str:
    """This machine's name as it appears in temporary names (no path separators)."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def new_name(suffix: str = "") -> str:
    """A fresh temporary name owned by this process."""
    return f"{host()}-{os.getpid()}-{uuid.uuid4().hex}{suffix}"


def owned(name: str) -> bool:
    """Whether `name` was made by this process."""
    found = _NAME_RE.fullmatch(name)
    return bool(found and found["host"] == host() and int(found["pid"]) == os.getpid())


def sweep(tmp: Path, *, stale_s: float = STALE_S, unknown_stale_s: float | None = None) -> list[str]:
    """Remove abandoned entries of `tmp` (see the module doc); the names removed.

    `unknown_stale_s` is the age after which an entry with a name not made by `new_name` goes
    (default `stale_s`; 0 in a folder that only this process's store uses)."""
    unknown_stale_s = stale_s if unknown_stale_s is None else unknown_stale_s
    removed = []
    now = time.time()
    try:
        entries = list(Path(tmp).iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        found = _NAME_RE.fullmatch(entry.name)
        age = now - _newest_mtime(entry)
        if found is None:
            abandoned = age >= unknown_stale_s
        elif found["host"] != host():
            abandoned = age >= stale_s
        else:
            abandoned = not _alive(int(found["pid"]), now - age)
        if abandoned:
            _remove(entry)
            removed.append(entry.name)
    return removed


def _alive(pid: int, last_written: float) -> bool:
    """Whether the process `pid` exists and is the one that wrote at `last_written`."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    started = _start_time(pid)
    return started is None or started <= last_written + 1.0  # started later: the pid was reused


def _start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), on Linux; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _newest_mtime(entry: Path) -> float:
    """The latest modification time of `entry` or anything inside it (0 when it vanished)."""
    try:
        newest = entry.lstat().st_mtime
    except OSError:
        return 0.0
    if entry.is_dir() and not entry.is_symlink():
        for folder, dirs, files in os.walk(entry):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
                except OSError:
                    continue
    return newest


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
