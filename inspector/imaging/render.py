"""Everything that turns tensors into PNG pictures, in one import place.

The work lives in small modules: features (channel grids, statistics), filters (weights),
overlay (heatmaps over images), montage (image grids, histograms).
"""

from inspector.imaging.features import channel_stats, render_feature_grid
from inspector.imaging.filters import render_filter_grid
from inspector.imaging.montage import render_histogram, tile_images
from inspector.imaging.overlay import render_image, render_overlay, resize_map

__all__ = [
    "channel_stats",
    "render_feature_grid",
    "render_filter_grid",
    "render_histogram",
    "render_image",
    "render_overlay",
    "resize_map",
    "tile_images",
]
