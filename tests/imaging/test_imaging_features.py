"""Channel grids decode back to the expected palette indices; channel_stats equals numpy."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from inspector.errors import InvalidArgument
from inspector.imaging.palette import GAP_INDEX, INK_INDEX, LEVELS
from inspector.imaging.render import channel_stats, render_feature_grid


def _decode(png: bytes) -> tuple[np.ndarray, np.ndarray]:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "P"
    return np.asarray(image), np.array(image.getpalette()).reshape(-1, 3)


def _levels(v: np.ndarray) -> np.ndarray:
    return np.rint(v * (LEVELS - 1)).astype(int)


def _tile(grid: np.ndarray, i: int, cols: int, h: int, w: int) -> np.ndarray:
    r, c = divmod(i, cols)
    return grid[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w]


def test_grid_layout_and_per_channel_values():
    t = np.random.default_rng(0).standard_normal((5, 4, 6)).astype(np.float32)
    grid, palette = _decode(render_feature_grid(t))
    # 5 tiles of 4x6: cols = ceil(sqrt(5 * 4 / 6)) = 2, rows 3, 1 px gaps
    assert grid.shape == (3 * 4 + 2, 2 * 6 + 1)
    for c in range(5):
        lo, hi = t[c].min(), t[c].max()
        np.testing.assert_array_equal(_tile(grid, c, 2, 4, 6), _levels((t[c] - lo) / (hi - lo)))
    assert (grid[4, :] == GAP_INDEX).all() and (grid[:, 6] == GAP_INDEX).all()
    assert (_tile(grid, 5, 2, 4, 6) == GAP_INDEX).all()  # the empty sixth cell
    viridis = matplotlib.colormaps["viridis"]
    assert palette[0].tolist() == list(viridis(0.0, bytes=True)[:3])
    assert palette[LEVELS - 1].tolist() == list(viridis(1.0, bytes=True)[:3])
    assert palette[GAP_INDEX].tolist() == [255, 255, 255]


def test_layer_normalization_constant_and_non_finite_channels():
    t = np.zeros((4, 3, 3), np.float32)
    t[0] = np.arange(9).reshape(3, 3)  # 0..8
    t[1] = 4.0  # constant
    t[2, 0, 0], t[2, 0, 1], t[2, 0, 2] = np.nan, np.inf, -np.inf
    t[3] = -2.0 + np.eye(3)
    grid, _ = _decode(render_feature_grid(t, normalize="layer", cmap="gray"))
    finite_lo, finite_hi = -2.0, 8.0
    np.testing.assert_array_equal(_tile(grid, 0, 2, 3, 3), _levels((t[0] + 2) / 10))
    assert (_tile(grid, 1, 2, 3, 3) == _levels(np.float32(6 / 10))).all()
    assert _tile(grid, 2, 2, 3, 3)[0].tolist() == [0, LEVELS - 1, 0]  # nan -> 0, inf -> top
    np.testing.assert_array_equal(_tile(grid, 3, 2, 3, 3), _levels((t[3] - finite_lo) / (finite_hi - finite_lo)))
    per_channel, _ = _decode(render_feature_grid(t))
    assert (_tile(per_channel, 1, 2, 3, 3) == 0).all()  # constant channel renders as 0
    assert (_tile(per_channel, 2, 2, 3, 3) == [[0, LEVELS - 1, 0], [0] * 3, [0] * 3]).all()


def test_top_k_and_explicit_channels_pick_and_order_tiles():
    means = np.array([0.1, 5.0, -2.0, 3.0, 4.0], np.float32)
    t = np.broadcast_to(means[:, None, None], (5, 2, 2)).copy()
    grid, _ = _decode(render_feature_grid(t, normalize="layer", top_k=3))
    assert grid.shape == (2 * 2 + 1, 2 * 2 + 1)  # 3 tiles -> 2x2 cells
    shown = [_tile(grid, i, 2, 2, 2)[0, 0] for i in range(3)]
    assert shown == _levels((means[[1, 4, 3]] + 2) / 7).tolist()  # channels 1, 4, 3
    grid, _ = _decode(render_feature_grid(t, normalize="layer", channels=[2, 0]))
    assert [_tile(grid, i, 2, 2, 2)[0, 0] for i in range(2)] == _levels((means[[2, 0]] + 2) / 7).tolist()


@pytest.mark.parametrize("kwargs,shape,match", [
    ({"channels": [5]}, (5, 2, 2), "0..4"),
    ({"channels": [0], "top_k": 1}, (5, 2, 2), "not both"),
    ({"top_k": 0}, (5, 2, 2), "top_k"),
    ({"normalize": "global"}, (5, 2, 2), "normalize"),
    ({"cmap": "no-such-map"}, (5, 2, 2), "colormap"),
    ({}, (1, 5, 2, 2), "Index the batch"),
])
def test_bad_grid_requests_are_refused(kwargs, shape, match):
    with pytest.raises(InvalidArgument, match=match):
        render_feature_grid(np.ones(shape, np.float32), **kwargs)


def test_2d_map_and_vector_strip():
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    grid, _ = _decode(render_feature_grid(m))
    np.testing.assert_array_equal(grid, _levels(m / 11))
    v = np.array([1.0, 3.0, 2.0], np.float32)
    for t in (v, v[:, None, None]):
        strip, _ = _decode(render_feature_grid(t))
        assert strip.shape == (16, 3 * 16)
        assert strip[0, ::16].tolist() == _levels(np.array([0, 1, 0.5])).tolist()
        assert (strip == strip[0]).all()


def test_labels_enlarge_tiles_and_keep_values_away_from_the_text():
    t = np.random.default_rng(1).standard_normal((4, 7, 7)).astype(np.float32)
    grid, _ = _decode(render_feature_grid(t, label=True))
    # 7 px tiles are enlarged 4x (nearest) to 28 px; 2x2 grid with 1 px gaps
    assert grid.shape == (57, 57)
    assert (grid == INK_INDEX).any()
    for c in range(4):
        tile = _tile(grid, c, 2, 28, 28)
        expected = _levels((t[c] - t[c].min()) / np.ptp(t[c])).repeat(4, 0).repeat(4, 1)
        np.testing.assert_array_equal(tile[14:], expected[14:])  # bottom half: no label there


def test_channel_stats_equal_numpy():
    rng = np.random.default_rng(2)
    t = np.maximum(rng.standard_normal((2, 4, 5, 5)), 0).astype(np.float32)
    stats = channel_stats(t)
    per_channel = t.transpose(1, 0, 2, 3).reshape(4, -1).astype(np.float64)
    for key, ref in (("min", per_channel.min(1)), ("max", per_channel.max(1)),
                     ("mean", per_channel.mean(1)), ("std", per_channel.std(1)),
                     ("zero_fraction", (per_channel == 0).mean(1))):
        assert stats[key].dtype == np.float64 and stats[key].shape == (4,)
        np.testing.assert_allclose(stats[key], ref, rtol=1e-12, err_msg=key)
    assert 0.3 < stats["zero_fraction"].mean() < 0.7
    unbatched = channel_stats(t[1])
    np.testing.assert_allclose(unbatched["mean"], t[1].reshape(4, -1).mean(1, dtype=np.float64))
    logits = rng.standard_normal((3, 6))
    np.testing.assert_allclose(channel_stats(logits)["max"], logits.max(0))
    np.testing.assert_allclose(channel_stats(t[0, :, 0], batched=True)["max"], t[0, :, 0].max(0))
