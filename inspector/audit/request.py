"""Audit as a request: fold a stream of input batches into an AuditRun, progress per batch with
a checkpoint every k batches, then the AuditReport (without model metadata)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Generator, Iterable, Sequence

import numpy as np
from inspector_client.types import CHECKPOINT, AuditReport, Progress

from inspector import errors


def run(access, name: str, prepare: Callable[[object], object], batches: Iterable, *,
        layers: Sequence[str] | None = None, labels: Sequence[int] | None = None,
        resume_state: bytes | None = None, checkpoint_every: int = 0,
        columnar: bool = False) -> Generator[Progress, None, AuditReport]:
    """`prepare` turns one batch as given into the model's input (an array, or an
    inputs.PreparedInput whose other inputs are held while the batch folds). `columnar`:
    per-channel statistics as arrays (AuditRun.result_columns), not JSON objects."""
    from inspector.audit.audit import AuditRun, fold_batch
    from inspector.graph.select import resolve_tensors

    model = access.graph
    if resume_state:
        try:
            audit = AuditRun.from_dict(model, json.loads(resume_state), name=name, memo=access.memo)
        except (ValueError, KeyError, TypeError) as exc:
            raise errors.InvalidArgument(f"resume_state is not an audit checkpoint: {exc}",
                                         field="resume_state") from None
    else:
        tensors = resolve_tensors(model, list(layers)) if layers else None
        audit = AuditRun(model, tensors, name=name, memo=access.memo)
    labels = None if labels is None else np.asarray(labels, np.int64)
    seen, total = 0, 0 if labels is None else len(labels)
    for i, batch in enumerate(batches):
        access.check_cancelled()
        prepared = prepare(batch)
        x, others = (prepared, {}) if isinstance(prepared, np.ndarray) else (prepared.x, prepared.others)
        batch_labels = None
        if labels is not None:
            if seen + len(x) > len(labels):
                raise errors.InvalidArgument(f"{len(labels)} labels were given but image {seen + len(x)} "
                                             "arrived; give one label per image", field="labels")
            batch_labels = labels[seen:seen + len(x)]
        with access.holding(others) if others else contextlib.nullcontext():
            fold_batch(access, audit, x, batch_labels)
        seen += len(x)
        previews = {}
        if checkpoint_every and (i + 1) % checkpoint_every == 0:
            previews[CHECKPOINT] = json.dumps(audit.to_dict()).encode()
        yield Progress(seen, total, message=f"{seen} images", previews=previews)
    if audit.aggregator is None:
        raise errors.InvalidArgument("the audit received no images", field="batch")
    if columnar:
        report, columns, flags = audit.result_columns()
        return AuditReport(report, audit.aggregator.images, columns, flags)
    return AuditReport(audit.result(), audit.aggregator.images)
