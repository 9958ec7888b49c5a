"""Stream a result's wire form (inspector_client.types.Wire) as ResultChunks, each message below
the configured limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from inspector_client.types import Progress, Wire

from inspector.service.convert import dict_to_struct
from inspector.v1 import inspector_pb2 as pb

if TYPE_CHECKING:
    from inspector.service.shared_memory import SharedMemory

# docs/probes.md: 1 MiB chunks are the throughput sweet spot on loopback and keep RSS flat.
DEFAULT_CHUNK = 1 << 20
_OVERHEAD = 4096  # item header and framing, generously


def chunk_size(max_message_bytes: int) -> int:
    return max(1024, min(DEFAULT_CHUNK, max_message_bytes - _OVERHEAD))


def header_message(wire: Wire) -> pb.ResultChunk:
    return pb.ResultChunk(header=pb.ResultHeader(
        model_id=wire.model_id, providers=list(wire.providers), warnings=list(wire.warnings),
        info=dict_to_struct(wire.info)))


def wire_value(value: np.ndarray | bytes | bytearray) -> np.ndarray | bytes | bytearray:
    """Blobs as they are; tensors contiguous and little-endian (no copy when they already are)."""
    if isinstance(value, bytes | bytearray):
        return value
    arr = np.asarray(value)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))


def item_start(group: str, name: str, value, media_type: str = "") -> pb.ItemStart:
    """The ItemStart of a wire value (see wire_value)."""
    if isinstance(value, bytes | bytearray):
        return pb.ItemStart(group=group, name=name, nbytes=len(value),
                            blob=pb.BlobMeta(media_type=media_type or "application/octet-stream"))
    return pb.ItemStart(group=group, name=name, nbytes=value.nbytes,
                        tensor=pb.TensorMeta(dtype=value.dtype.name, shape=list(value.shape)))


def item_messages(group: str, name: str, value, media_type: str, size: int) -> Iterator[pb.ResultChunk]:
    value = wire_value(value)
    start = item_start(group, name, value, media_type)
    if isinstance(value, bytes | bytearray):
        view = memoryview(value)
    else:
        view = memoryview(value.reshape(-1)).cast("B") if value.size else memoryview(b"")
    first = True
    for offset in range(0, max(len(view), 1), size):
        piece = bytes(view[offset:offset + size])
        yield pb.ResultChunk(item=start, data=piece) if first else pb.ResultChunk(data=piece)
        first = False


def result_messages(result: Wire, max_message_bytes: int, *, header: bool = True,
                    shm: SharedMemory | None = None) -> Iterator[pb.ResultChunk]:
    """The result's messages. With `shm` (a client that reads our shm dir) large tensors go into
    a file and their ItemStarts travel together in `shared_items`: in Python gRPC every message
    costs a round trip of a few hundred microseconds."""
    size = chunk_size(max_message_bytes)
    values = [wire_value(item.value) for item in result.items]
    placed = shm.place(values) if shm is not None else None
    refs = placed.refs if placed is not None else {}
    pending = header_message(result) if header else None  # the next message, gathering shared items
    room = size - (pending.ByteSize() if pending is not None else 0)
    try:
        for i, (item, value) in enumerate(zip(result.items, values, strict=True)):
            if i in refs:
                start = item_start(item.group, item.name, value, item.media_type)
                start.shm.CopyFrom(refs[i])
                cost = start.ByteSize() + 8  # with its field tag and length
                if pending is not None and cost > room:
                    yield pending
                    pending = None
                if pending is None:
                    pending, room = pb.ResultChunk(), size
                pending.shared_items.append(start)
                room -= cost
                continue
            if pending is not None:
                yield pending
                pending = None
            yield from item_messages(item.group, item.name, value, item.media_type, size)
        if pending is not None:
            yield pending
    except BaseException:  # GeneratorExit: the call ended (cancelled, aborted) before all went out
        if placed is not None:
            placed.discard()
        raise


def progress_message(p: Progress, max_message_bytes: int) -> Iterator[pb.ResultChunk]:
    yield pb.ResultChunk(progress=pb.Progress(step=p.step, total=p.total, values=list(p.values),
                                              message=p.message))
    size = chunk_size(max_message_bytes)
    for item in p.wire_items():
        yield from item_messages(item.group, item.name, item.value, item.media_type, size)
