"""Perturbation CAMs: channel or position weights come from extra forward passes, no gradients."""

from __future__ import annotations

import numpy as np

from inspector.methods.cam import BaseCAM, CamInput
from inspector.methods.maps import flag, positive_int, scale_maps, upsample
from inspector.methods.tail import tail_scores

PERTURBATION_DEFAULTS = {**BaseCAM.defaults, "batch_size": 32}


class ScoreCAM(BaseCAM):
    name = "scorecam"
    uses_gradients = False
    defaults = PERTURBATION_DEFAULTS
    doc = ("Weights = softmax over channels of the target score on x masked by each upsampled, "
           "normalized channel (Wang et al., CVPR-W 2020, arXiv:1910.01279).")

    def channel_weights(self, c: CamInput) -> np.ndarray:
        n, ch = c.act.shape[:2]
        rows = np.repeat(c.rows, ch)

        def masked(i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
            flat = c.act.reshape(n * ch, *c.act.shape[2:])[i0:i1]
            masks = scale_maps(upsample(flat, c.run.size))
            return c.run.blend(masks, rows[i0:i1], x=c.x), rows[i0:i1]

        scores = c.run.scores(n * ch, masked, positive_int(c.params, "batch_size")).reshape(n, ch)
        scores = scores - scores.max(axis=1, keepdims=True)
        return (np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)).astype(np.float32)


class AblationCAM(BaseCAM):
    name = "ablationcam"
    uses_gradients = False
    defaults = PERTURBATION_DEFAULTS
    doc = ("Weights = relative score drop when a channel of the layer is zeroed "
           "(Desai & Ramaswamy, WACV 2020).")

    def channel_weights(self, c: CamInput) -> np.ndarray:
        n, ch = c.act.shape[:2]
        rows = np.repeat(c.rows, ch)
        channels = np.tile(np.arange(ch), n)

        def ablated(i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
            values = c.act[rows[i0:i1]].copy()
            values[np.arange(i1 - i0), channels[i0:i1]] = 0.0
            return c.to_layer(values, rows[i0:i1]), rows[i0:i1]

        scores = tail_scores(c.run, c.x, c.layer, n * ch, ablated, positive_int(c.params, "batch_size"))
        base = c.run.score[:, None] if c.x is c.run.x else _own_scores(c)[:, None]
        safe = np.where(np.abs(base) > 1e-7, base, 1e-7)
        return ((base - scores.reshape(n, ch)) / safe).astype(np.float32)


def _own_scores(c: CamInput) -> np.ndarray:
    value = c.run.forward(c.x)[c.run.tensor]
    return c.run.image_scores(value, c.rows)


GAUSS3 = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], np.float32)


class ReciproCAM(BaseCAM):
    name = "reciprocam"
    uses_gradients = False
    defaults = {**PERTURBATION_DEFAULTS, "smooth": True}
    doc = ("Map value at (i, j) = target score when only that position of the layer (Gaussian 3x3 "
           "neighbourhood if smooth) is kept (Byun & Lee, arXiv:2209.14074).")

    def layer_map(self, c: CamInput) -> np.ndarray:
        n, _, h, w = c.act.shape
        rows = np.repeat(c.rows, h * w)
        spots = np.tile(np.arange(h * w), n)
        kernel = GAUSS3 if flag(c.params, "smooth") else np.pad(np.ones((1, 1), np.float32), 1)

        def kept(i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
            masks = np.zeros((i1 - i0, h + 2, w + 2), np.float32)
            for j, spot in enumerate(spots[i0:i1]):
                y, x = divmod(int(spot), w)
                masks[j, y:y + 3, x:x + 3] = kernel
            return c.to_layer(c.act[rows[i0:i1]] * masks[:, None, 1:-1, 1:-1], rows[i0:i1]), rows[i0:i1]

        scores = tail_scores(c.run, c.x, c.layer, n * h * w, kept, positive_int(c.params, "batch_size"))
        maps = scores.reshape(n, h, w)
        return (maps - maps.reshape(n, -1).min(axis=1)[:, None, None]).astype(np.float32)
