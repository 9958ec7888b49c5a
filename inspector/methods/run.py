"""One explanation call's state: the batch, its layout, the fixed target seed, batched model calls.

The seed is fixed once from the original forward pass, so perturbed or interpolated copies of an
image are scored against the same target (its top-1 class is not re-chosen per copy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from inspector_client.types import Gradients

from inspector.errors import InvalidArgument
from inspector.methods.base import (
    Explanation,
    Target,
    describe_targets,
    is_default,
    make_seed,
    per_image,
    take_rows,
    target_scores,
)
from inspector.model_access import ModelAccess


def image_layout(x: np.ndarray) -> str:
    """"NHWC" when the last axis holds 1 or 3 channels and axis 1 does not; otherwise "NCHW"."""
    return "NHWC" if x.shape[3] in (1, 3) and x.shape[1] not in (1, 3) else "NCHW"


def check_images(x: np.ndarray) -> np.ndarray:
    """The batch as a float or integer (images fed as uint8/int8) array of rank 4, or a user-facing
    error. Perturbed copies of an integer batch are rounded and clipped to its dtype (Run.blend,
    Run.scores); gradients are taken w.r.t. its float value (graph.autodiff.inputs)."""
    x = np.asarray(x)
    if x.ndim != 4 or 0 in x.shape:
        raise InvalidArgument(f"the input must be an image batch [N, C, H, W] or [N, H, W, C]; got shape "
                              f"{list(x.shape)}", field="input")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise InvalidArgument(f"the input must be a float or integer tensor; got {x.dtype}", field="input")
    if not np.all(np.isfinite(x)):
        raise InvalidArgument("the input contains NaN or infinite values", field="input")
    return x


def output_rank(access: ModelAccess, tensor: str) -> int | None:
    """The declared rank of a graph output, None for other tensors or unknown shapes."""
    for out in access.graph.graph.output:
        if out.name == tensor and out.type.tensor_type.HasField("shape"):
            return len(out.type.tensor_type.shape.dim)
    return None


def _feed_dtype(x: np.ndarray, model_dtype: np.dtype) -> np.dtype:
    """The dtype a gradient run gets: the batch's own, except that float values for an integer
    input stay float (the runtime rounds and clips them; a cast here would wrap negatives)."""
    if np.issubdtype(model_dtype, np.integer) and np.issubdtype(np.asarray(x).dtype, np.floating):
        return np.asarray(x).dtype
    return model_dtype


def one_run(access: ModelAccess, target: Target, tensor: str, axis: int | None = 0) -> bool:
    """Whether one forward+backward run can seed itself: a default (top-1) target on [N, K] logits
    (the batch on axis 0)."""
    return is_default(target) and axis == 0 and output_rank(access, tensor) == 2


def target_axis(access: ModelAccess, tensor: str, x: np.ndarray) -> int | None:
    """The batch axis of the target tensor (graph.batch_axis: axis 0 for [N, K] logits, 1 for
    time-major [T, N, K], None for a tensor without one, such as [K, 4] boxes of a batch-1 export)."""
    from inspector.graph.batch_axis import batch_axis

    return batch_axis(access, tensor, x)


def check_target_axis(tensor: str, value: np.ndarray, axis: int | None, n: int) -> None:
    """InvalidArgument unless `value` holds n images on `axis` (one image where it has no batch axis)."""
    from inspector.graph.batch_axis import layout_label

    if axis is None:
        if n != 1:
            raise InvalidArgument(f"the target tensor '{tensor}' has no batch axis (shape {list(value.shape)} "
                                  f"for {n} images); send one image per call, or target a tensor that keeps "
                                  "the batch", field="tensor")
    elif axis >= value.ndim or value.shape[axis] != n:
        raise InvalidArgument(f"the target tensor '{tensor}' has shape {list(value.shape)}, not {n} images on "
                              f"its batch axis {axis} ({layout_label(value.shape, axis)})", field="tensor")


def gradients(access: ModelAccess, x: np.ndarray, wrt: Sequence[str] | None = None,
              target: Target | None = None, policy: str | None = None) -> Gradients:
    """d(target)/d(wrt) on the batch x (any input, not only images); wrt defaults to the model
    input, the target to each image's top-1 class of the first output, the policy to "standard".
    Tensor and node names are resolved as the layer table shows them."""
    from inspector.graph.autodiff import POLICIES
    from inspector.graph.select import resolve_tensors

    policy = policy or POLICIES[0]
    if policy not in POLICIES:
        raise InvalidArgument(f"unknown gradient policy {policy!r}; use one of {', '.join(POLICIES)}",
                              field="policy")
    target = target or Target()
    start = target.tensor or access.output_names[0]
    if start not in access.output_names:
        start = resolve_tensors(access.graph, [start])[0]
    names = [access.input_name] if not wrt else [
        w if w == access.input_name else resolve_tensors(access.graph, [w])[0] for w in wrt]
    axis = target_axis(access, start, x)
    if one_run(access, target, start, axis):
        grads, fetched = access.backward_top1(x, start, names, policy=policy)
        value = fetched[start]
    else:
        value = access.forward(x, fetch=[start])[start]
        check_target_axis(start, value, axis, len(x))
        grads = access.backward(x, start, make_seed(target, value, axis, start), names, policy=policy)
    return Gradients({n: grads[n] for n in names}, start=start, policy=policy,
                     targets=describe_targets(target, value, start, axis),
                     scores=[float(s) for s in target_scores(target, value, axis)], wrt=names)


class TargetShapeChanged(InvalidArgument):
    """The target tensor has another shape on perturbed images than on the originals."""


@dataclass
class Run:
    """A started explanation: first forward done, target seed and score known."""

    access: ModelAccess
    x: np.ndarray
    target: Target
    tensor: str
    layout: str
    outputs: dict[str, np.ndarray]
    seed: np.ndarray
    score: np.ndarray
    score_after: bool = True
    first_gradients: dict[str, np.ndarray] | None = None  # standard-policy gradients on x itself
    batch_axis: int | None = 0  # the target tensor's batch axis (None: it has none; one image)
    agnostic: bool = False  # a class-agnostic method on an output with no default target: no score

    @classmethod
    def start(cls, access: ModelAccess, x: np.ndarray, target: Target, fetch: Sequence[str] = (),
              wrt: Sequence[str] = (), score_after: bool = True, class_agnostic: bool = False) -> Run:
        """The first pass. With a default (top-1) target on [N, K] logits and `wrt` given, one
        forward+backward run yields the outputs, the seed and the gradients together.
        `class_agnostic`: a method that needs no target runs even where no default target exists
        (a detector's output); it then reports no score."""
        x = check_images(x)
        tensor = target.tensor or access.output_names[0]
        run = cls(access, x, target, tensor, image_layout(x), {}, np.zeros(0), np.zeros(0), score_after)
        run.batch_axis = target_axis(access, tensor, x)
        if wrt and one_run(access, target, tensor, run.batch_axis):
            grads, fetched = access.backward_top1(np.ascontiguousarray(x), tensor, list(wrt),
                                                  fetch=list(dict.fromkeys([*fetch, *access.output_names])))
            run.outputs, run.first_gradients = fetched, grads
        if not run.outputs:
            run.outputs = run.forward(x, fetch)
        value = run.outputs[tensor]
        try:
            check_target_axis(tensor, value, run.batch_axis, len(x))
            run.seed = make_seed(target, value, run.batch_axis, tensor)
        except InvalidArgument:
            if not (class_agnostic and is_default(target)):
                raise
            run.agnostic, run.score_after, run.batch_axis = True, False, 0
            run.seed = np.zeros_like(np.asarray(value, np.float32))
            run.score = np.zeros(len(x))
            return run
        run.score = per_image(run.seed * value, run.batch_axis)
        return run

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the input images."""
        return self.x.shape[1:3] if self.layout == "NHWC" else self.x.shape[2:4]

    def forward(self, x: np.ndarray, fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Forward pass that also returns the target tensor and `fetch`."""
        extra = [] if self.tensor in self.access.output_names else [self.tensor]
        return self.access.forward(np.ascontiguousarray(x, self.x.dtype), list(dict.fromkeys([*fetch, *extra])))

    def scores(self, count: int, images: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
               batch_size: int) -> np.ndarray:
        """Target scores of `count` inputs; images(i0, i1) gives (inputs, source image rows) for [i0, i1)."""
        out = np.empty(count, np.float64)
        batch_size = 1 if self.batch_axis is None else batch_size  # a tensor without a batch axis: one per run
        for i0 in range(0, count, batch_size):
            self.access.check_cancelled()
            xs, rows = images(i0, min(count, i0 + batch_size))
            if np.issubdtype(self.x.dtype, np.integer) and not np.issubdtype(xs.dtype, np.integer):
                info = np.iinfo(self.x.dtype)  # integer images: round and clip, never wrap
                xs = np.clip(np.round(xs), info.min, info.max)
            value = self.forward(xs)[self.tensor]
            out[i0:i0 + len(xs)] = self.image_scores(value, rows)
        return out

    def seed_rows(self, rows: np.ndarray) -> np.ndarray:
        """The seed of source images `rows`, on the target tensor's batch axis."""
        return take_rows(self.seed, rows, self.batch_axis)

    def image_scores(self, value: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """[len(rows)] target scores of a target-tensor value whose image i uses the seed of rows[i]."""
        seed = self.seed_rows(rows)
        if np.shape(value) != seed.shape:
            raise self.shape_changed(value)
        return per_image(seed * value, self.batch_axis)

    def shape_changed(self, value: np.ndarray) -> TargetShapeChanged:
        """The error for a target tensor whose per-image shape differs on changed images."""
        def one(shape: tuple[int, ...]) -> list[int]:
            axis = self.batch_axis
            return list(shape) if axis is None else list(shape[:axis] + shape[axis + 1:])

        return TargetShapeChanged(
            f"the target tensor '{self.tensor}' changes shape on perturbed images ({one(self.seed.shape)} per image "
            f"for the images, {one(np.shape(value))} for a changed copy; a detector's box count, say): its scores "
            "cannot be compared; target a tensor of fixed shape (class scores before the box selection, or a "
            "layer)", field="tensor")

    def gradients(self, x: np.ndarray, wrt: Sequence[str], rows: np.ndarray | None = None,
                  policy: str = "standard", fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """d(target)/d(wrt) on `x`, whose image i uses the seed of source image rows[i]."""
        cached = self.first_gradients
        if (cached is not None and x is self.x and policy == "standard" and not fetch
                and all(w in cached for w in wrt)
                and (rows is None or np.array_equal(rows, np.arange(len(self.x))))):
            return {w: cached[w] for w in wrt}
        if self.batch_axis is None and len(x) > 1:  # a target without a batch axis: one image per run
            from inspector.graph.batch_axis import batch_axis

            parts = [self.gradients(x[i:i + 1], wrt, None if rows is None else rows[i:i + 1], policy, fetch)
                     for i in range(len(x))]
            return {k: np.concatenate([p[k] for p in parts], axis=batch_axis(self.access, k, x) or 0)
                    for k in parts[0]}
        seed = self.seed if rows is None else self.seed_rows(rows)
        try:
            return self.access.backward(np.ascontiguousarray(x, _feed_dtype(x, self.x.dtype)), self.tensor, seed,
                                        list(wrt), policy=policy, fetch=list(fetch))
        except InvalidArgument:  # a copy whose target has another shape (fewer boxes) fails in the gradient graph
            value = self.forward(x)[self.tensor]
            if np.shape(value) != seed.shape:
                raise self.shape_changed(value) from None
            raise

    def gradient_sum(self, count: int, images: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
                     batch_size: int, weights: np.ndarray | None = None, policy: str = "standard") -> np.ndarray:
        """Sum over `count` inputs of weights[i] * d(target)/d(input), per source image: [N, ...].

        Memory stays at one batch plus the result, whatever the number of steps or samples.
        """
        name = self.access.input_name
        total = np.zeros(self.x.shape, np.float64)
        for i0 in range(0, count, batch_size):
            self.access.check_cancelled()
            xs, rows = images(i0, min(count, i0 + batch_size))
            grads = self.gradients(xs, [name], rows, policy)[name]
            w = np.ones(len(xs)) if weights is None else np.asarray(weights[i0:i0 + len(xs)], np.float64)
            for row in np.unique(rows):  # a weighted sum per source image (np.add.at is slow)
                pick = rows == row
                total[row] += np.tensordot(w[pick], grads[pick], axes=1)
        return total.astype(np.float32)

    def blend(self, maps: np.ndarray, rows: np.ndarray, baseline: float | np.ndarray = 0.0,
              x: np.ndarray | None = None) -> np.ndarray:
        """x[rows] * m + baseline * (1 - m) for spatial maps m [M, H, W] (broadcast over channels);
        x defaults to the run's batch. Computed in float32, returned in the batch's dtype (integer
        images rounded and clipped to their range)."""
        m = maps[..., None] if self.layout == "NHWC" else maps[:, None]
        x = (self.x if x is None else x)[rows]
        out = np.asarray(x, np.float32) * m + np.asarray(baseline, np.float32) * (1.0 - m)
        if np.issubdtype(self.x.dtype, np.integer):
            info = np.iinfo(self.x.dtype)
            out = np.clip(np.round(out), info.min, info.max)
        return out.astype(self.x.dtype)

    def to_spatial(self, attribution: np.ndarray, how: str) -> np.ndarray:
        """Reduce an input-shaped attribution over channels: "absmax", "abssum" or "sum"."""
        axis = 3 if self.layout == "NHWC" else 1
        if how == "absmax":
            return np.abs(attribution).max(axis=axis)
        if how == "abssum":
            return np.abs(attribution.sum(axis=axis))
        return attribution.sum(axis=axis)

    def finish(self, method: str, heatmap: np.ndarray, params: dict[str, object], layers: Sequence[str] = (),
               layer_heatmap: np.ndarray | None = None, attribution: np.ndarray | None = None,
               extras: dict[str, np.ndarray] | None = None) -> Explanation:
        """Package the result; score_after is the target score on x * heatmap."""
        heatmap = np.nan_to_num(np.asarray(heatmap, np.float32)).clip(0.0, 1.0)
        rows = np.arange(len(self.x))
        after = None
        if self.score_after:  # one more forward pass; Explain(score_after=False) skips it
            try:
                after = self.scores(len(rows), lambda i0, i1: (self.blend(heatmap[i0:i1], rows[i0:i1]), rows[i0:i1]),
                                    batch_size=max(1, len(rows))).astype(np.float32)
            except TargetShapeChanged:
                after = None  # the target has other elements on x * heatmap: no score to compare
        return Explanation(
            method=method, heatmap=heatmap,
            layer_heatmap=None if layer_heatmap is None else np.asarray(layer_heatmap, np.float32),
            attribution=None if attribution is None else np.asarray(attribution, np.float32),
            layers=list(layers), targets=["(class-agnostic)"] * len(self.x) if self.agnostic else describe_targets(
                self.target, self.outputs[self.tensor], self.tensor, self.batch_axis),
            score=[] if self.agnostic else [float(s) for s in self.score.astype(np.float32)],
            score_after=None if after is None else [float(s) for s in after],
            params=dict(params), extras=dict(extras or {}))
