"""How a CAM layer's activations become [N, C, h, w] maps, whatever the layer's layout.

[N, C, h, w] stays as it is. [N, h, w, C] (a Swin stage in timm's newer exports) is transposed
when the channels-first reading (h, w) does not fit the image or its aspect ratio (within 1.5x) and
the channels-last one does (within 1.1x). Token layers of vision
transformers, [N, tokens, C] or [tokens, N, C] (the batch axis from graph.batch_axis), are cut to
their patch grid as pytorch-grad-cam's `reshape_transform` does: a leading class token is
dropped when tokens - 1 is a perfect square, tokens that are a perfect square are taken as they
are, and otherwise a factorization of the token count (after 0, 1 or 2 leading tokens) with the
image's aspect ratio is used. Everything else (2-D tensors, recurrent sequences, token counts
without a grid, a batch folded into another axis) is refused naming the layer and its shape.

`from_maps` undoes `to_maps` (the dropped tokens taken from the original activations), so
methods that edit the layer and run the rest of the network (Ablation-CAM, Recipro-CAM) feed the
model its own layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from inspector.errors import InvalidArgument

SEQUENCE_OPS = frozenset({"LSTM", "GRU", "RNN", "Scan", "Loop", "DynamicQuantizeLSTM"})
SQUARE_ASPECT = math.log(2.0)  # a square token grid fits images up to 2:1
GRID_ASPECT = math.log(1.1)  # another grid must match the image's aspect ratio this closely
LOOSE_ASPECT = math.log(1.5)  # a 4-D layer read channels-first that is this close stays channels-first
NEEDS = ("class activation maps need an N,C,h,w tensor (a spatial layer; N,h,w,C also works), or the token "
         "output of a vision transformer block ([N, tokens, C] or [tokens, N, C]) whose tokens form the patch "
         "grid; name such a layer with `layers`")


@dataclass(frozen=True)
class LayerLayout:
    """One layer's layout: "NCHW", "NHWC" or "tokens" (batch_axis, leading tokens dropped, grid)."""

    kind: str
    batch_axis: int = 0
    drop: int = 0
    grid: tuple[int, int] = (0, 0)

    def to_maps(self, a: np.ndarray) -> np.ndarray:
        """The activations (or gradients) as [N, C, h, w]."""
        if self.kind == "NCHW":
            return a
        if self.kind == "NHWC":
            return np.ascontiguousarray(a.transpose(0, 3, 1, 2))
        t = np.moveaxis(a, self.batch_axis, 0)[:, self.drop:]
        gh, gw = self.grid
        return np.ascontiguousarray(t.reshape(len(t), gh, gw, t.shape[2]).transpose(0, 3, 1, 2))

    def from_maps(self, maps: np.ndarray, like: np.ndarray) -> np.ndarray:
        """[M, C, h, w] back in the layer's layout; `like` (the layer's values for the same M images,
        in its own layout) gives the tokens that are not on the grid."""
        if self.kind == "NCHW":
            return maps
        if self.kind == "NHWC":
            return np.ascontiguousarray(maps.transpose(0, 2, 3, 1))
        m, c = maps.shape[:2]
        tokens = maps.transpose(0, 2, 3, 1).reshape(m, -1, c)
        kept = np.moveaxis(like, self.batch_axis, 0)[:, :self.drop]
        joined = np.concatenate([kept.astype(tokens.dtype), tokens], axis=1)
        return np.ascontiguousarray(np.moveaxis(joined, 0, self.batch_axis))


def _map_of(hw: tuple[int, ...], size: tuple[int, int], tolerance: float) -> bool:
    """Whether (h, w) fits in the image and has its aspect ratio within `tolerance` (a log ratio)."""
    h, w = (int(v) for v in hw)
    return (1 <= h <= size[0] and 1 <= w <= size[1]
            and abs(math.log(h / w) - math.log(size[0] / size[1])) <= tolerance)


def grid_for(tokens: int, size: tuple[int, int]) -> tuple[int, int, int] | None:
    """(leading tokens dropped, grid height, grid width) for `tokens` tokens of an image of `size`,
    or None when no grid fits."""
    aspect = math.log(size[0] / size[1]) if size[0] > 0 and size[1] > 0 else 0.0
    for drop in (1, 0):
        side = math.isqrt(max(tokens - drop, 0))
        if side >= 2 and side * side == tokens - drop and abs(aspect) <= SQUARE_ASPECT:
            return drop, side, side
    best = None
    for drop in (0, 1, 2):
        count = tokens - drop
        for gh in range(2, count // 2 + 1):
            if count % gh:
                continue
            miss = abs(math.log(gh / (count // gh)) - aspect)
            if miss <= GRID_ASPECT and (best is None or miss < best[0]):
                best = (miss, drop, gh, count // gh)
    return None if best is None else best[1:]


def _sequence_op(model, layer: str) -> str | None:
    """The recurrent op the layer comes from, if any (its 'tokens' are time steps, not patches)."""
    from inspector.methods.layers import ancestors

    producer = {o: n for n in model.graph.node for o in n.output}
    for t in ancestors(model, layer):
        node = producer.get(t)
        if node is not None and node.op_type in SEQUENCE_OPS:
            return node.op_type
    return None


def layer_layout(access, layer: str, act: np.ndarray, x: np.ndarray, size: tuple[int, int]) -> LayerLayout:
    """The layout of `layer` (activations `act` for the batch `x` of images of `size`), or an
    InvalidArgument naming the layer, its shape and what to pass instead."""
    from inspector.graph.batch_axis import batch_axis, layout_label

    shape = tuple(act.shape)
    if act.ndim not in (3, 4):
        raise InvalidArgument(f"layer '{layer}' has shape {list(shape)} and is not spatial; {NEEDS}", field="layers")
    memo = getattr(access, "memo", None)
    compute = lambda: batch_axis(access, layer, x)  # noqa: E731
    axis = memo(("cam_layer_axis", layer), compute) if memo else compute()
    if axis is None or shape[axis] != len(x):
        raise InvalidArgument(f"layer '{layer}' has shape {list(shape)} for {len(x)} image(s) and no batch axis "
                              f"of that size; {NEEDS}", field="layers")
    shown = layout_label(shape, axis)
    if act.ndim == 4:
        if axis != 0:
            raise InvalidArgument(f"layer '{layer}' has shape {shown}, the batch on axis {axis}: it is not an image "
                                  f"feature map; {NEEDS}", field="layers")
        if not _map_of(shape[2:4], size, LOOSE_ASPECT) and _map_of(shape[1:3], size, GRID_ASPECT):
            return LayerLayout("NHWC")
        return LayerLayout("NCHW")
    op = memo(("cam_layer_sequence", layer), lambda: _sequence_op(access.graph, layer)) if memo else \
        _sequence_op(access.graph, layer)
    if op is not None:
        raise InvalidArgument(f"layer '{layer}' has shape {shown} and comes from a {op}: its tokens are time steps, "
                              f"not image patches; {NEEDS}", field="layers")
    tokens = shape[1] if axis == 0 else shape[0]
    found = grid_for(tokens, size)
    if found is None:
        raise InvalidArgument(f"layer '{layer}' has shape {shown}: its {tokens} tokens do not form a patch grid "
                              f"for a {size[0]}x{size[1]} image (with or without a class token); {NEEDS}",
                              field="layers")
    drop, gh, gw = found
    return LayerLayout("tokens", axis, drop, (gh, gw))
