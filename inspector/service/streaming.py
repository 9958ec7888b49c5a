"""Stream a Result as ResultChunks, each message below the configured limit."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from inspector.results import Progress, Result
from inspector.service.convert import dict_to_struct
from inspector.v1 import inspector_pb2 as pb

# probes.md: 1 MiB chunks are the throughput sweet spot on loopback and keep RSS flat.
DEFAULT_CHUNK = 1 << 20
_OVERHEAD = 4096  # item header and framing, generously


def chunk_size(max_message_bytes: int) -> int:
    return max(1024, min(DEFAULT_CHUNK, max_message_bytes - _OVERHEAD))


def header_message(result: Result) -> pb.ResultChunk:
    m = result.metadata
    return pb.ResultChunk(header=pb.ResultHeader(
        model_id=m.model_id, providers=list(m.providers), warnings=list(m.warnings),
        info=dict_to_struct(result.info)))


def item_messages(group: str, name: str, value, media_type: str, size: int) -> Iterator[pb.ResultChunk]:
    if isinstance(value, bytes | bytearray):
        start = pb.ItemStart(group=group, name=name, nbytes=len(value),
                             blob=pb.BlobMeta(media_type=media_type or "application/octet-stream"))
        view = memoryview(value)
    else:
        arr = np.asarray(value)
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        start = pb.ItemStart(group=group, name=name, nbytes=arr.nbytes,
                             tensor=pb.TensorMeta(dtype=arr.dtype.name, shape=list(arr.shape)))
        view = memoryview(arr.reshape(-1)).cast("B") if arr.size else memoryview(b"")
    first = True
    for offset in range(0, max(len(view), 1), size):
        piece = bytes(view[offset:offset + size])
        yield pb.ResultChunk(item=start, data=piece) if first else pb.ResultChunk(data=piece)
        first = False


def result_messages(result: Result, max_message_bytes: int, *, header: bool = True) -> Iterator[pb.ResultChunk]:
    size = chunk_size(max_message_bytes)
    if header:
        yield header_message(result)
    for item in result.items:
        yield from item_messages(item.group, item.name, item.value, item.media_type, size)


def progress_message(p: Progress, max_message_bytes: int) -> Iterator[pb.ResultChunk]:
    yield pb.ResultChunk(progress=pb.Progress(step=p.step, total=p.total, values=list(p.values),
                                              message=p.message))
    size = chunk_size(max_message_bytes)
    for item in p.previews:
        yield from item_messages(item.group, item.name, item.value, item.media_type, size)
