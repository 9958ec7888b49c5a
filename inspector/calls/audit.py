"""Audit as a call: activation statistics aggregated next to the tensors over an image stream."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable, Sequence

import numpy as np

from inspector import errors
from inspector.results import Item, Progress, Result


def audit(loaded, prepare: Callable, batches: Iterable, *, layers: Sequence[str] | None = None,
          labels: Sequence[int] | None = None, resume_state: bytes | None = None,
          checkpoint_every: int = 0, columnar: bool = False) -> Generator[Progress, None, Result]:
    """Fold every batch into an AuditRun; progress per batch, checkpoints every k batches.
    `columnar`: the per-channel statistics as arrays (AuditRun.result_columns), not JSON objects."""
    from inspector.audit.audit import AuditRun, fold_batch
    from inspector.graph.select import resolve_tensors

    if resume_state:
        try:
            run = AuditRun.from_dict(loaded.model, json.loads(resume_state), name=loaded.name,
                                     memo=loaded.access.memo)
        except (ValueError, KeyError, TypeError) as exc:
            raise errors.InvalidArgument(f"resume_state is not an audit checkpoint: {exc}",
                                         field="resume_state") from None
    else:
        tensors = resolve_tensors(loaded.model, list(layers)) if layers else None
        run = AuditRun(loaded.model, tensors, name=loaded.name or loaded.id[:12], memo=loaded.access.memo)
    labels = None if labels is None else np.asarray(labels, np.int64)
    seen, total = 0, 0 if labels is None else len(labels)
    for i, inp in enumerate(batches):
        loaded.access.check_cancelled()
        x = prepare(inp).x
        batch_labels = None
        if labels is not None:
            if seen + len(x) > len(labels):
                raise errors.InvalidArgument(f"{len(labels)} labels were given but image {seen + len(x)} "
                                             "arrived; give one label per image", field="labels")
            batch_labels = labels[seen:seen + len(x)]
        fold_batch(loaded.access, run, x, batch_labels)
        seen += len(x)
        checkpoint = ()
        if checkpoint_every and (i + 1) % checkpoint_every == 0:
            checkpoint = (Item("checkpoint", "state", json.dumps(run.to_dict()).encode(), "application/json"),)
        yield Progress(seen, total, message=f"{seen} images", previews=checkpoint)
    if run.aggregator is None:
        raise errors.InvalidArgument("the audit received no images", field="batch")
    result = Result(loaded.run_metadata(), info={"images": run.aggregator.images})
    if columnar:
        report, columns, flags = run.result_columns()
        result.add("audit", "channel_stats", columns)
        result.add("audit", "channel_flags", flags)
    else:
        report = run.result()
    result.add("audit", "audit", json.dumps(report).encode(), "application/json")
    return result
