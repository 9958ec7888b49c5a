"""Batches of any size through models that declare a fixed batch dimension (torch.onnx.export's default).

OrtModelAccess uses these helpers: `declared_shapes` and `fixed_batch` read what the model's
inputs declare; `free_batch` makes dim 0 symbolic in a copy (used once `agree` has shown that a
batch run of the copy equals single runs of the original); otherwise `chunks` splits a batch into
runs of the fixed size (the last one padded by repeating its last row) and `join` puts the
results back together, refusing outputs whose batch axis it cannot tell.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import onnx

from inspector import errors

Dim = int | str | None
BATCH_PARAM = "inspector_batch"  # the symbolic name a freed batch dimension gets
RTOL, ATOL = 1e-4, 1e-5  # a freed run agrees with single runs within these (atol scaled by magnitude)


def declared_shapes(model: onnx.ModelProto) -> dict[str, tuple[Dim, ...] | None]:
    """Each graph input that is not an initializer: its declared dims (int when fixed, the
    symbolic name or None otherwise), or None when the model declares no shape."""
    inits = {t.name for t in model.graph.initializer}
    shapes: dict[str, tuple[Dim, ...] | None] = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            shapes[vi.name] = None
            continue
        shapes[vi.name] = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0
                                else (d.dim_param or None) for d in tt.shape.dim)
    return shapes


def fixed_batch(model: onnx.ModelProto, input_name: str) -> int | None:
    """The static size of dim 0 of `input_name`, or None when it is symbolic or undeclared."""
    dims = declared_shapes(model).get(input_name)
    return dims[0] if dims and isinstance(dims[0], int) else None


def free_batch(model: onnx.ModelProto, input_name: str, batch: int) -> onnx.ModelProto:
    """A copy whose input dim 0 is symbolic, as is dim 0 of every output and value_info that
    equals `batch` (so shape inference of the variants built from it carries any batch)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for vi in graph.input:
        if vi.name == input_name:
            dims = vi.type.tensor_type.shape.dim
            if dims:
                dims[0].dim_param = BATCH_PARAM  # a oneof: clears dim_value
    for vi in [*graph.output, *graph.value_info]:
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == batch:
            dims[0].dim_param = BATCH_PARAM
    return out


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes and values within RTOL and ATOL x the magnitude of `b`."""
    if a.shape != b.shape:
        return False
    if a.dtype.kind not in "fc" or b.dtype.kind not in "fc":
        return bool(np.array_equal(a, b))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    finite = np.isfinite(b64)
    if not np.array_equal(finite, np.isfinite(a64)) or not np.array_equal(a64[~finite], b64[~finite]):
        return False
    scale = float(np.abs(b64[finite]).max()) if finite.any() else 0.0
    return bool(np.allclose(a64[finite], b64[finite], rtol=RTOL, atol=ATOL * max(1.0, scale)))


def agree(both: Mapping[str, np.ndarray], first: Mapping[str, np.ndarray],
          second: Mapping[str, np.ndarray]) -> str | None:
    """None when a run on two stacked batches (`both`) equals the runs on each (`first`,
    `second`) for every output, the batch on any one axis; else why not."""
    for name, single in first.items():
        a, b, joint = single, second[name], both.get(name)
        if joint is None:
            return f"output {name!r} is missing"
        if joint.shape == a.shape:  # no batch axis: must not depend on the images
            if not (close(joint, a) and close(b, a)):
                return f"output {name!r} has no batch axis but depends on the images"
            continue
        axes = [i for i in range(joint.ndim) if a.ndim == joint.ndim and joint.shape[i] != a.shape[i]]
        if len(axes) != 1 or a.shape != b.shape or joint.shape[axes[0]] != a.shape[axes[0]] * 2:
            return f"output {name!r} has shape {list(joint.shape)} for two batches of {list(a.shape)}"
        if not close(joint, np.concatenate([a, b], axis=axes[0])):
            return f"output {name!r} differs from the single runs"
    return None


def chunks(n: int, batch: int) -> list[tuple[int, int, int]]:
    """(start, stop, pad) of each run of `batch` rows covering n rows; only the last is padded."""
    return [(i, min(n, i + batch), batch - (min(n, i + batch) - i)) for i in range(0, n, batch)]


def pad_rows(a: np.ndarray, pad: int, *, zero: bool = False) -> np.ndarray:
    """`a` with `pad` more rows: copies of its last row, or zeros."""
    if pad <= 0:
        return a
    extra = np.zeros_like(a[-1:]) if zero else a[-1:]
    return np.ascontiguousarray(np.concatenate([a, np.repeat(extra, pad, axis=0)]))


def refuse(batch: int, n: int, detail: str) -> errors.InvalidArgument:
    """The error for a batch that cannot be split; names the batch the caller sent."""
    return errors.InvalidArgument(
        f"the model takes a batch of {batch} and the request sent {n} image{'s' if n != 1 else ''}, "
        f"which cannot be split into runs of {batch}: {detail}; send {batch} image"
        f"{'s' if batch != 1 else ''} per call, or export the model with a dynamic batch dimension",
        field="input")


def join(parts: Sequence[tuple[Mapping[str, np.ndarray], int]], batch: int, n: int, *,
         leading: Mapping[str, Dim] | None = None, constant: Collection[str] = ()) -> dict[str, np.ndarray]:
    """The results of runs of `batch` rows as one result for n rows.

    parts: (values, real rows) per run. An output with dim 0 = `batch` in every run (and, where
    shape inference knows its dim 0, `leading` agrees) is concatenated without the padded rows;
    `constant` (initializers) are taken once; a 1-D
    integer output equal in every run and starting with `batch` (a Shape of a batch tensor)
    gets n as its first entry. Anything else raises InvalidArgument naming the caller's batch.
    """
    out: dict[str, np.ndarray] = {}
    for name in parts[0][0]:
        arrays = [values[name] for values, _ in parts]
        if name in constant:
            out[name] = arrays[0]
            continue
        lead = (leading or {}).get(name)
        if all(a.ndim >= 1 and a.shape[0] == batch for a in arrays) and not (isinstance(lead, int) and lead != batch):
            out[name] = np.concatenate([a[:rows] for a, (_, rows) in zip(arrays, parts, strict=True)])
            continue
        first = arrays[0]
        if (first.ndim == 1 and first.dtype.kind in "iu" and len(first) and first[0] == batch
                and all(np.array_equal(a, first) for a in arrays)):
            shape = first.copy()
            shape[0] = n
            out[name] = shape
            continue
        raise refuse(batch, n, f"its output {name!r} has shape {list(first.shape)}, without the batch first")
    return out
