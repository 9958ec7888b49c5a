"""Gradients of a target scalar with respect to the input or any intermediate tensors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inspector import errors
from inspector.results import Result

POLICIES = ("standard", "guided_backprop", "deconvnet")


def gradients(loaded, x: np.ndarray, wrt: Sequence[str] | None, target, policy: str = "standard") -> Result:
    """d(target)/d(wrt) for the batch x; the seed comes from the target on a forward pass."""
    from inspector.graph.select import resolve_tensors
    from inspector.methods.base import (
        Target,
        describe_targets,
        is_default,
        make_seed,
        target_scores,
    )
    from inspector.methods.run import output_rank

    policy = policy or "standard"
    if policy not in POLICIES:
        raise errors.InvalidArgument(f"unknown gradient policy {policy!r}; use one of {', '.join(POLICIES)}",
                                     field="policy")
    access = loaded.access
    target = target or Target()
    start = target.tensor or access.output_names[0]
    if start not in access.output_names:
        start = resolve_tensors(loaded.model, [start])[0]
    wrt_names = [access.input_name] if not wrt else [
        w if w == access.input_name else resolve_tensors(loaded.model, [w])[0] for w in wrt]
    if is_default(target) and output_rank(access, start) == 2:
        grads, fetched = access.backward_top1(x, start, wrt_names, policy=policy)  # one run
        value = fetched[start]
    else:
        value = access.forward(x, fetch=[start])[start]
        grads = access.backward(x, start, make_seed(target, value), wrt_names, policy=policy)
    result = Result(loaded.run_metadata(), info={
        "start": start, "policy": policy, "targets": describe_targets(target, value, start),
        "scores": [float(s) for s in target_scores(target, value)], "wrt": wrt_names})
    for name in wrt_names:
        result.add("gradient", name, grads[name])
    return result

