"""Pure image code: decode and preprocess inputs; render grids, overlays and histograms as PNG."""
