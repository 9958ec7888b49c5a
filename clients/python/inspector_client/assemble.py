"""Reassemble a ResultChunk stream into arrays and blobs (the wire format in the .proto).

Items the server put in shared memory come back as views of the mapped file (no copy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from google.protobuf import json_format

from .shared_memory import ResultFiles, SharedMemoryError
from .types import PROGRESS_GROUPS, Progress, Wire, WireItem
from .v1 import inspector_pb2 as pb


class _Item:
    def __init__(self, start: pb.ItemStart, shared: np.ndarray | None = None) -> None:
        """`shared`: the item's bytes, already complete in shared memory."""
        self.start = start
        if shared is None:
            self.buffer = np.empty(start.nbytes, np.uint8)  # not zero-filled: every byte gets written
            self.filled = 0
        else:
            self.buffer, self.filled = shared, len(shared)

    def append(self, data: bytes) -> None:
        end = self.filled + len(data)
        if end > len(self.buffer):
            raise ValueError(f"item {self.start.name!r} received more bytes than announced")
        self.buffer[self.filled:end] = np.frombuffer(data, np.uint8)
        self.filled = end

    def value(self):
        if self.filled != len(self.buffer):
            raise ValueError(f"item {self.start.name!r} ended after {self.filled} of {len(self.buffer)} bytes")
        if self.start.WhichOneof("kind") == "tensor":
            meta = self.start.tensor
            dtype = np.dtype(meta.dtype).newbyteorder("<")
            arr = self.buffer.view(dtype).reshape(tuple(meta.shape))
            return arr.astype(dtype.newbyteorder("="), copy=False)
        return self.buffer.tobytes()


def assemble(chunks: Iterable[pb.ResultChunk],
             on_progress: Callable[[Progress], None] | None = None,
             shm_dir: str | None = None) -> Wire:
    """`shm_dir`: where shared-memory items may lie (None: the client did not offer it)."""
    result = Wire()
    files = ResultFiles(shm_dir) if shm_dir is not None else None
    current: _Item | None = None
    pending_previews: dict[str, bytes] = {}
    last_progress: Progress | None = None

    def finish(item: _Item | None) -> None:
        if item is None:
            return
        group, name = item.start.group, item.start.name
        value = item.value()
        if group in PROGRESS_GROUPS and last_progress is not None:
            last_progress.previews[name] = value
            return
        result.items.append(WireItem(group, name, value, item.start.blob.media_type
                                     if item.start.WhichOneof("kind") == "blob" else ""))

    messages = iter(chunks)
    for msg in messages:
        if msg.HasField("header"):
            h = msg.header
            result.model_id, result.providers = h.model_id, tuple(h.providers)
            result.warnings = list(h.warnings)
            result.info = json_format.MessageToDict(h.info)
        if msg.HasField("progress"):
            finish(current)
            current = None
            if last_progress is not None and on_progress is not None:
                on_progress(last_progress)
            p = msg.progress
            last_progress = Progress(p.step, p.total, tuple(p.values), p.message, dict(pending_previews))
        for start in msg.shared_items:
            finish(current)
            if files is None:
                raise SharedMemoryError(f"the server put item {start.name!r} in shared memory, "
                                        "which this client did not offer")
            try:
                current = _Item(start, files.item_bytes(start))
            except SharedMemoryError:
                for _ in messages:  # a call that failed meanwhile (its file is gone) raises its own error
                    pass
                raise
        if msg.HasField("item"):
            finish(current)
            current = _Item(msg.item)
        if msg.data:
            if current is None:
                raise ValueError("data arrived before any item started")
            current.append(msg.data)
    finish(current)
    if last_progress is not None and on_progress is not None:
        on_progress(last_progress)
    return result
