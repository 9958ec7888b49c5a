"""Faithfulness metrics for a heatmap: deletion / insertion AUC, ROAD, confidence change, pointing game.

All scores are the explained target's score (sum(seed * value)), with the seed fixed on the
original images; forward passes are batched by `batch_size` and cancellable between batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inspector.errors import InvalidArgument
from inspector.methods.base import Explanation, Target
from inspector.methods.integrated_gradients import gaussian_blur
from inspector.methods.maps import positive_int, unit_float
from inspector.methods.run import Run
from inspector.model_access import ModelAccess

METRICS = ("deletion", "insertion", "road", "confidence", "pointing_game")
DEFAULT_METRICS = ("deletion", "insertion")
ALIASES = {"confidence_drop": "confidence", "confidence_increase": "confidence", "confidence_change": "confidence",
           "road_morf": "road", "road_lerf": "road"}
DEFAULTS: dict[str, object] = {"steps": 20, "batch_size": 32, "blur_sigma": 5.0, "percentiles": (10, 30, 50, 70, 90),
                               "noise": 0.01, "seed": 0, "box": None, "tolerance": 0}


def _ranks(heat: np.ndarray) -> np.ndarray:
    """Per image, each pixel's rank by heat (0 = most important; ties by position)."""
    flat = heat.reshape(len(heat), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None], axis=1)
    return ranks.reshape(heat.shape)


def _curve(run: Run, ranks: np.ndarray, start: np.ndarray, end: np.ndarray, steps: int, batch: int) -> np.ndarray:
    """Scores while the top-ranked pixels go from `start` to `end` images, in steps + 1 stages."""
    n, pixels = len(run.x), ranks[0].size
    rows = np.repeat(np.arange(n), steps + 1)
    stage = np.tile(np.arange(steps + 1), n)

    def images(i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
        r, k = rows[i0:i1], np.round(stage[i0:i1] * pixels / steps)
        moved = (ranks[r] < k[:, None, None]).astype(np.float32)
        m = moved[..., None] if run.layout == "NHWC" else moved[:, None]
        return (start[r] * (1 - m) + end[r] * m).astype(run.x.dtype), r

    return run.scores(len(rows), images, batch).reshape(n, steps + 1)


def impute(x: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator, layout: str) -> np.ndarray:
    """ROAD's noisy linear imputer: removed pixels = weighted mean of their 8 neighbours (solved by
    relaxation), plus Gaussian noise; known pixels stay fixed (Rong et al., ICML 2022)."""
    img = np.moveaxis(x, -1, 1) if layout == "NHWC" else x
    out = img.astype(np.float64).copy()
    m = removed[:, None].astype(bool)
    out[np.broadcast_to(m, out.shape)] = 0.0
    weights = [((dy, dx), 1 / 6 if dy == 0 or dx == 0 else 1 / 12)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    valid = np.ones(img.shape[-2:])
    norm = sum(w * np.pad(valid, 1)[1 + dy:1 + dy + valid.shape[0], 1 + dx:1 + dx + valid.shape[1]]
               for (dy, dx), w in weights)
    for _ in range(60):
        padded = np.pad(out, ((0, 0), (0, 0), (1, 1), (1, 1)))
        h, w = out.shape[-2:]
        avg = sum(wt * padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for (dy, dx), wt in weights) / norm
        out = np.where(m, avg, out)
    out += np.where(m, noise * rng.standard_normal(out.shape), 0.0)
    out = out.astype(x.dtype)
    return np.moveaxis(out, 1, -1) if layout == "NHWC" else out


def _road(run: Run, ranks: np.ndarray, params: dict[str, object]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(positive_int(params, "seed", 0))
    pixels, n = ranks[0].size, len(run.x)
    morf, lerf = [], []
    rows = np.arange(n)
    for pct in params["percentiles"]:  # type: ignore[union-attr]
        k = int(round(pixels * float(pct) / 100))
        for most, out in ((True, morf), (False, lerf)):
            removed = ranks < k if most else ranks >= pixels - k
            imputed = impute(run.x, removed, float(params["noise"]), rng, run.layout)
            out.append(run.scores(n, lambda a, b, im=imputed: (im[a:b], rows[a:b]),
                                  positive_int(params, "batch_size")) - run.score)
    morf_mean, lerf_mean = np.mean(morf, axis=0), np.mean(lerf, axis=0)
    return {"road_morf": morf_mean, "road_lerf": lerf_mean, "road": (lerf_mean - morf_mean) / 2}


def _pointing(heat: np.ndarray, params: dict[str, object]) -> np.ndarray:
    box = params["box"]
    if box is None:
        raise InvalidArgument("pointing_game needs a box (y0, x0, y1, x1) in input pixels, or one per image",
                              field="box")
    boxes = np.broadcast_to(np.asarray(box, np.int64).reshape(-1, 4), (len(heat), 4))
    tol = positive_int(params, "tolerance", 0)
    hits = []
    for h, (y0, x0, y1, x1) in zip(heat, boxes, strict=True):
        y, x = np.unravel_index(np.argmax(h), h.shape)
        hits.append(y0 - tol <= y < y1 + tol and x0 - tol <= x < x1 + tol)
    return np.asarray(hits, np.float32)


def evaluate(access: ModelAccess, x: np.ndarray, explanation: Explanation | np.ndarray,
             metrics: Sequence[str] | None = None, target: Target | None = None,
             **params: object) -> dict[str, np.ndarray]:
    """The requested metrics (None: DEFAULT_METRICS) of an explanation or a heatmap [N, H, W]
    ([H, W] for one image), each an array with one value per image (curves [N, steps + 1])."""
    metrics = [ALIASES.get(m, m) for m in (metrics or DEFAULT_METRICS)]
    unknown_m = [m for m in metrics if m not in METRICS]
    unknown_p = sorted(set(params) - set(DEFAULTS))
    if unknown_m or unknown_p:
        bad = unknown_m or unknown_p
        raise InvalidArgument(f"unknown metric(s) or parameter(s) {', '.join(bad)}; metrics: {', '.join(METRICS)}; "
                              f"parameters: {', '.join(DEFAULTS)}", field=bad[0])
    p = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    run = Run.start(access, x, target or Target())
    heat = np.nan_to_num(np.asarray(getattr(explanation, "heatmap", explanation), np.float32))
    heat = heat[None] if heat.ndim == 2 else heat
    if heat.shape != (len(run.x), *run.size):
        raise InvalidArgument(f"heatmap shape {list(heat.shape)} does not match the images "
                              f"[{len(run.x)}, {run.size[0]}, {run.size[1]}]", field="heatmap")
    ranks, steps, batch = _ranks(heat), positive_int(p, "steps"), positive_int(p, "batch_size")
    out: dict[str, np.ndarray] = {}
    if "deletion" in metrics:
        out["deletion_curve"] = _curve(run, ranks, run.x, np.zeros_like(run.x), steps, batch)
        out["deletion"] = np.trapezoid(out["deletion_curve"], dx=1 / steps, axis=1)
    if "insertion" in metrics:  # from a blurred copy towards the image
        axes = (1, 2) if run.layout == "NHWC" else (2, 3)
        blurred = gaussian_blur(run.x, unit_float(p, "blur_sigma", 0.1, 1e4), axes)
        out["insertion_curve"] = _curve(run, ranks, blurred, run.x, steps, batch)
        out["insertion"] = np.trapezoid(out["insertion_curve"], dx=1 / steps, axis=1)
    if "road" in metrics:
        out.update(_road(run, ranks, p))
    if "confidence" in metrics:
        rows = np.arange(len(run.x))
        after = run.scores(len(rows), lambda a, b: (run.blend(heat[a:b], rows[a:b]), rows[a:b]), batch)
        out["confidence_change"] = after - run.score
        out["confidence_drop"] = 100 * np.maximum(run.score - after, 0) / np.maximum(np.abs(run.score), 1e-12)
        out["confidence_increase"] = (after > run.score).astype(np.float32)
    if "pointing_game" in metrics:
        out["pointing_game"] = _pointing(heat, p)
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
