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
    from inspector.methods.base import Target, describe_targets, make_seed, target_scores

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
    default = target.index is None and not target.classes and target.channel is None and target.box is None \
        and target.mask is None and target.seed is None
    if default and _is_2d_output(access, start):
        grads, fetched = access.backward_top1(x, start, wrt_names, policy=policy)  # one run
        value = fetched[start]
    else:
        value = access.forward(x, fetch=[start])[start]
        grads = access.backward(x, start, make_seed(target, value), wrt_names, policy=policy)
    result = Result(loaded.run_metadata(), info={
        "start": start, "policy": policy, "targets": describe_targets(target, value),
        "scores": [float(s) for s in target_scores(target, value)], "wrt": wrt_names})
    for name in wrt_names:
        result.add("gradient", name, grads[name])
    return result


def _is_2d_output(access, start: str) -> bool:
    """True when `start` is a graph output declared as [N, K] (classifier logits)."""
    for out in access.graph.graph.output:
        if out.name == start:
            return len(out.type.tensor_type.shape.dim) == 2
    return False
