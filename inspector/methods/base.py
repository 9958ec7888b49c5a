"""What every attribution method shares: the target (what is explained), the result, the base class.

A `Target` turns the forward value of one tensor into a seed (d target / d tensor), so gradient
methods, perturbation methods and metrics all score the same scalar per image: sum(seed * value).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from inspector_client.types import Explanation

from inspector.errors import InvalidArgument

if TYPE_CHECKING:
    from inspector.model_access import ModelAccess


@dataclass(frozen=True)
class Target:
    """Which scalar per image is explained (see make_seed for how the fields combine)."""

    tensor: str | None = None
    index: tuple[int, ...] | None = None
    classes: tuple[int, ...] = ()
    channel: int | None = None
    box: tuple[int, int, int, int] | None = None
    mask: np.ndarray | None = None
    seed: np.ndarray | None = None


def as_target(spec: object = None) -> Target:
    """A Target from what callers pass: None (top-1), a Target, an int (an index), a list of class
    indices, a seed array, or a dict of Target fields (the client's TargetSpec)."""
    if spec is None or isinstance(spec, Target):
        return spec or Target()
    if isinstance(spec, int | np.integer):
        return Target(index=(int(spec),))
    if isinstance(spec, np.ndarray):
        return Target(seed=spec)
    if isinstance(spec, dict):
        fields = {"tensor", "index", "classes", "channel", "box", "mask", "seed"}
        unknown = sorted(set(spec) - fields)
        if unknown:
            raise InvalidArgument(f"unknown target fields {unknown}; known: {', '.join(sorted(fields))}",
                                  field="target")
        index = spec.get("index")
        box = spec.get("box")
        if box is not None and len(box) != 4:
            raise InvalidArgument("target box needs 4 numbers: y0, x0, y1, x1", field="box")
        return Target(tensor=spec.get("tensor") or None,
                      index=None if index is None else tuple(int(i) for i in np.atleast_1d(index)),
                      classes=tuple(int(c) for c in spec.get("classes") or ()),
                      channel=None if spec.get("channel") is None else int(spec["channel"]),
                      box=None if box is None else tuple(int(v) for v in box),
                      mask=None if spec.get("mask") is None else np.asarray(spec["mask"]),
                      seed=None if spec.get("seed") is None else np.asarray(spec["seed"]))
    try:
        return Target(classes=tuple(int(c) for c in spec))
    except (TypeError, ValueError):
        raise InvalidArgument(f"a target is an index, a list of classes, a dict or a seed array, not "
                              f"{spec!r}", field="target") from None


def _explicit_seed(seed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    seed = np.asarray(seed, np.float32)
    if seed.shape == shape:
        return seed.copy()
    if seed.shape == shape[1:]:
        return np.broadcast_to(seed, shape).copy()
    raise InvalidArgument(f"target seed has shape {list(seed.shape)}; it must match the target "
                          f"tensor {list(shape)} or one image's slice {list(shape[1:])}", field="seed")


def _selection(target: Target, value: np.ndarray, name: str = "output") -> np.ndarray:
    """One-hot of index / classes / top-1; ones where neither is given."""
    shape, one = value.shape, value.shape[1:]
    sel = np.zeros(shape, np.float32)
    if target.index is not None:
        index = tuple(int(i) for i in target.index)
        if len(index) > len(one) or any(not 0 <= i < d for i, d in zip(index, one, strict=False)):
            raise InvalidArgument(f"target index {list(index)} is outside the target tensor '{name}''s "
                                  f"per-image shape {list(one)}", field="index")
        sel[(slice(None), *index)] = 1.0
    elif target.classes:
        if len(one) == 0 or any(not 0 <= int(k) < one[0] for k in target.classes):
            raise InvalidArgument(f"target classes {list(target.classes)} must lie in [0, {one[0] if one else 0}) "
                                  f"(the target tensor '{name}')", field="classes")
        for k in target.classes:
            sel[:, int(k)] = 1.0
    elif target.channel is None and target.box is None and target.mask is None:
        if len(one) != 1:
            raise InvalidArgument(f"the target tensor '{name}' has per-image shape {list(one)}; give a target "
                                  "index, channel, box, mask or seed (top-1 is only chosen on [N, K] outputs)",
                                  field="index")
        sel[np.arange(shape[0]), value.reshape(shape[0], -1).argmax(axis=1)] = 1.0
    else:
        sel[...] = 1.0
    return sel


def _region(target: Target, shape: tuple[int, ...]) -> np.ndarray:
    """Ones on the channel / box / mask region of one image's slice, broadcast to the batch."""
    region = np.ones(shape, np.float32)
    if target.channel is not None or target.box is not None:
        if len(shape) != 4:
            raise InvalidArgument(f"a target channel or box needs an N,C,H,W tensor; this one has shape "
                                  f"{list(shape)}", field="channel" if target.box is None else "box")
    if target.channel is not None:
        if not 0 <= target.channel < shape[1]:
            raise InvalidArgument(f"target channel {target.channel} is outside [0, {shape[1]})", field="channel")
        keep = np.zeros(shape[1], np.float32)
        keep[target.channel] = 1.0
        region *= keep[None, :, None, None]
    if target.box is not None:
        y0, x0, y1, x1 = (int(v) for v in target.box)
        if not (0 <= y0 < y1 <= shape[2] and 0 <= x0 < x1 <= shape[3]):
            raise InvalidArgument(f"target box {[y0, x0, y1, x1]} (y0, x0, y1, x1) is empty or outside "
                                  f"the {shape[2]}x{shape[3]} tensor", field="box")
        inside = np.zeros(shape[2:], np.float32)
        inside[y0:y1, x0:x1] = 1.0
        region *= inside
    if target.mask is not None:
        try:
            region = region * np.broadcast_to(np.asarray(target.mask, np.float32), shape[1:])
        except ValueError:
            raise InvalidArgument(f"target mask of shape {list(np.shape(target.mask))} does not broadcast "
                                  f"against one image's slice {list(shape[1:])}", field="mask") from None
    return region


def is_default(target: Target) -> bool:
    """No index, classes, region or seed given: each image's top-1 class."""
    return (target.index is None and not target.classes and target.channel is None and target.box is None
            and target.mask is None and target.seed is None)


def _explicit_seed_on(seed: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """An explicit seed for a tensor whose batch is on `axis`: its full shape or one image's slice."""
    seed = np.asarray(seed, np.float32)
    one = shape[:axis] + shape[axis + 1:]
    if seed.shape == shape:
        return seed.copy()
    if seed.shape == one:
        return np.broadcast_to(np.expand_dims(seed, axis), shape).copy()
    raise InvalidArgument(f"target seed has shape {list(seed.shape)}; it must match the target "
                          f"tensor {list(shape)} or one image's slice {list(one)}", field="seed")


def make_seed(target: Target, value: np.ndarray, batch_axis: int | None = 0,
              tensor: str | None = None) -> np.ndarray:
    """The seed d(score)/d(value) for the batch, same shape as `value`: one slice per image along
    `batch_axis` (0: [N, ...]; 1: time-major [T, N, K]; None: a tensor without a batch axis, one image).

    Index, classes, top-1 and regions address one image's slice (the tensor without its batch axis).
    """
    value = np.asarray(value)
    name = tensor or target.tensor or "output"
    if batch_axis is None:
        return make_seed(target, value[None], 0, name)[0]
    if not 0 <= batch_axis < max(value.ndim, 1):
        raise InvalidArgument(f"the target tensor '{name}' has shape {list(value.shape)}, without a batch axis "
                              f"{batch_axis}", field="tensor")
    if value.ndim < 2:
        raise InvalidArgument(f"the target tensor '{name}' has shape {list(value.shape)}; it needs a batch axis "
                              "and at least one more", field="tensor")
    one = value.shape[:batch_axis] + value.shape[batch_axis + 1:]
    if 0 in one:
        raise InvalidArgument(f"the output '{name}' is empty for this image: nothing to explain (shape "
                              f"{list(value.shape)}, {list(one)} per image); give a target tensor that is not "
                              "empty (another output or a layer) with a target index, channel or seed",
                              field="tensor")
    if batch_axis:
        if target.seed is not None:
            return _explicit_seed_on(target.seed, value.shape, batch_axis)
        return np.moveaxis(make_seed(target, np.moveaxis(value, batch_axis, 0), 0, name), 0, batch_axis)
    if target.seed is not None:
        return _explicit_seed(target.seed, value.shape)
    seed = _selection(target, value, name) * _region(target, value.shape)
    if not np.any(seed):
        raise InvalidArgument(f"the target selects no element of the tensor '{name}' (check index, box and mask)",
                              field="index")
    return seed


def per_image(product: np.ndarray, batch_axis: int | None = 0) -> np.ndarray:
    """Sum over everything but the batch axis: [N] (one value for a tensor without a batch axis)."""
    product = np.asarray(product)
    if batch_axis is None:
        return product.reshape(1, -1).sum(axis=1)
    moved = np.moveaxis(product, batch_axis, 0)
    return moved.reshape(moved.shape[0], -1).sum(axis=1)


def take_rows(a: np.ndarray, rows: np.ndarray, batch_axis: int | None = 0) -> np.ndarray:
    """The slices of images `rows` along the batch axis (a tensor without one is the same for every row)."""
    return np.asarray(a) if batch_axis is None else np.take(a, rows, axis=batch_axis)


def target_scores(target: Target, value: np.ndarray, batch_axis: int | None = 0) -> np.ndarray:
    """[N] scores: sum(seed * value) per image."""
    seed = make_seed(target, value, batch_axis)
    return per_image(seed * value, batch_axis)


def describe_targets(target: Target, value: np.ndarray, tensor: str = "output",
                     batch_axis: int | None = 0) -> list[str]:
    """A short human label per image, e.g. "logits[281]", "feat[c=3, y=2:5, x=0:4]"."""
    name = target.tensor or tensor
    seed = make_seed(target, value, batch_axis, name)
    rows = seed[None] if batch_axis is None else np.moveaxis(seed, batch_axis, 0)
    labels = []
    for row in rows:
        if target.seed is not None:
            labels.append(f"{name}*seed")
            continue
        parts = []
        if target.index is not None:
            parts.append(",".join(str(int(i)) for i in target.index))
        elif target.classes:
            parts.append("+".join(str(int(k)) for k in target.classes))
        elif row.ndim == 1 and target.mask is None:
            parts.append(str(int(np.argmax(row))))
        if target.channel is not None:
            parts.append(f"c={target.channel}")
        if target.box is not None:
            y0, x0, y1, x1 = target.box
            parts.append(f"y={y0}:{y1}, x={x0}:{x1}")
        label = f"{name}[{', '.join(parts)}]" if parts else name
        labels.append(label + ("*mask" if target.mask is not None else ""))
    return labels


class Method(ABC):
    """A method: class attributes describe it, explain() validates parameters and runs compute()."""

    name: ClassVar[str]
    uses_gradients: ClassVar[bool]
    class_agnostic: ClassVar[bool] = False  # explains the activations, not a target's score
    defaults: ClassVar[dict[str, object]] = {}
    doc: ClassVar[str]

    def parameters(self, params: dict[str, object]) -> dict[str, object]:
        """The effective parameters: defaults overridden by `params`; unknown names are an error."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise InvalidArgument(f"method {self.name!r} does not take parameter(s) {', '.join(unknown)}; "
                                  f"its parameters are: {known}", field=unknown[0])
        return {**self.defaults, **{k: v for k, v in params.items() if v is not None}}

    def explain(self, access: ModelAccess, x: np.ndarray, target: Target,
                layers: Sequence[str] | None = None, **params: object) -> Explanation:
        """Explain `target` on the image batch `x` (NCHW, or NHWC with 1 or 3 channels)."""
        from inspector.methods.run import Run

        score_after = bool(params.pop("score_after", True))
        p = self.parameters(params)
        chosen = self.layers_for(access, list(layers) if layers else [], tuple(np.shape(x)))
        run = Run.start(access, x, target if target is not None else Target(),
                        fetch=self.fetch_for(access, chosen), wrt=self.gradients_for(access, chosen),
                        score_after=score_after, class_agnostic=self.class_agnostic)
        return self.compute(run, chosen, p)

    def gradients_for(self, access: ModelAccess, layers: list[str]) -> list[str]:
        """Tensors whose standard-policy gradient on the original batch compute() will ask for;
        with a default target they come out of the first run itself (top-1 seeded in the graph)."""
        return []

    def layers_for(self, access: ModelAccess, layers: list[str], input_shape: tuple[int, ...] = ()) -> list[str]:
        """The layers this method will use (CAMs fill in the default layer)."""
        return layers

    def fetch_for(self, access: ModelAccess, layers: list[str]) -> list[str]:
        """Tensors to fetch in the first forward pass, so compute() need not run it again."""
        return []

    @abstractmethod
    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        """The method itself, over a started Run (original forward done, seed fixed)."""


if TYPE_CHECKING:
    from inspector.methods.run import Run
