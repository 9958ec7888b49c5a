"""Perturbation attributions over the input: Occlusion (sliding window) and RISE (random masks).

Forward passes only, batched by `batch_size`, cancellable between batches.
"""

from __future__ import annotations

import numpy as np

from inspector.errors import InvalidArgument
from inspector.methods.base import Explanation, Method
from inspector.methods.maps import positive_int, scale_by_max, scale_maps, unit_float, upsample
from inspector.methods.run import Run


def _pair(params: dict[str, object], name: str, size: tuple[int, int]) -> tuple[int, int]:
    value = params[name]
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)  # type: ignore[arg-type]
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1 for v in pair):
        raise InvalidArgument(f"parameter {name} must be a positive integer or a pair (height, width); got {value!r}",
                              field=name)
    if name == "window" and (pair[0] > size[0] or pair[1] > size[1]):
        raise InvalidArgument(f"window {list(pair)} is larger than the {size[0]}x{size[1]} image", field=name)
    return int(pair[0]), int(pair[1])


def _spread(run: Run, maps: np.ndarray) -> np.ndarray:
    """[N, H, W] -> the input's shape (same value on every channel)."""
    m = maps[..., None] if run.layout == "NHWC" else maps[:, None]
    return np.broadcast_to(m, run.x.shape).astype(np.float32)


class Occlusion(Method):
    name = "occlusion"
    uses_gradients = False
    defaults = {"window": 8, "stride": 4, "baseline": 0.0, "batch_size": 32}
    doc = ("Score drop when a sliding window is set to the baseline, averaged over the windows covering "
           "each pixel (Zeiler & Fergus, ECCV 2014; Captum's Occlusion).")

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        (wh, ww), (sh, sw) = _pair(params, "window", run.size), _pair(params, "stride", run.size)
        baseline = unit_float(params, "baseline", -1e30, 1e30)
        h, w = run.size
        spots = [(y, x) for y in range(0, h - wh + 1, sh) for x in range(0, w - ww + 1, sw)]
        n = len(run.x)
        rows = np.repeat(np.arange(n), len(spots))
        where = np.tile(np.arange(len(spots)), n)

        def occluded(i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
            keep = np.ones((i1 - i0, h, w), np.float32)
            for j, s in enumerate(where[i0:i1]):
                y, x = spots[s]
                keep[j, y:y + wh, x:x + ww] = 0.0
            return run.blend(keep, rows[i0:i1], baseline), rows[i0:i1]

        drops = run.score[rows] - run.scores(len(rows), occluded, positive_int(params, "batch_size"))
        total = np.zeros((n, h, w))
        count = np.zeros((h, w))
        for (y, x), col in zip(spots, drops.reshape(n, len(spots)).T, strict=True):
            total[:, y:y + wh, x:x + ww] += col[:, None, None]
            count[y:y + wh, x:x + ww] += 1
        attr = np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)
        return run.finish(self.name, scale_by_max(attr), params, attribution=_spread(run, attr))


class RISE(Method):
    name = "rise"
    uses_gradients = False
    defaults = {"masks": 500, "grid": 8, "probability": 0.5, "seed": 0, "batch_size": 32}
    doc = ("Score-weighted mean of random smooth masks, normalized by the keep probability "
           "(Petsiuk et al., BMVC 2018, arXiv:1806.07421).")

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        count, grid = positive_int(params, "masks"), positive_int(params, "grid")
        p = unit_float(params, "probability", 1e-6, 1.0)
        rng = np.random.default_rng(positive_int(params, "seed", 0))
        h, w = run.size
        ch, cw = -(-h // grid), -(-w // grid)
        cells = (rng.random((count, grid, grid)) < p).astype(np.float32)
        shifts = np.stack([rng.integers(0, ch, count), rng.integers(0, cw, count)], axis=1)

        def masks(i0: int, i1: int) -> np.ndarray:
            big = upsample(cells[i0:i1], ((grid + 1) * ch, (grid + 1) * cw))
            return np.stack([m[dy:dy + h, dx:dx + w] for m, (dy, dx) in zip(big, shifts[i0:i1], strict=True)])

        n = len(run.x)
        batch = positive_int(params, "batch_size")
        sal = np.zeros((n, h, w))
        for i0 in range(0, count, batch):
            m = masks(i0, min(count, i0 + batch))
            rows = np.repeat(np.arange(n), len(m))
            tiled = np.tile(m, (n, 1, 1))
            scores = run.scores(len(rows), lambda a, b, t=tiled, r=rows: (run.blend(t[a:b], r[a:b]), r[a:b]),
                                batch).reshape(n, len(m))
            sal += np.einsum("nm,mhw->nhw", scores, m)
        sal /= count * p
        return run.finish(self.name, scale_maps(sal), params, attribution=_spread(run, sal.astype(np.float32)))
