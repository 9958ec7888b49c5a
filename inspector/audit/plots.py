"""The audit report's plots, drawn with matplotlib's Figure directly (Agg, no pyplot state), as PNG bytes."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_LEGEND = {"fontsize": 7, "ncol": 4, "loc": "lower center", "bbox_to_anchor": (0.5, 1.0), "frameon": False}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _layer_axes(names: list[str], title: str, xlabel: str) -> tuple[Figure, object]:
    """One row per layer, first layer on top, so long tensor names stay readable in deep models."""
    fig = Figure(figsize=(9, min(2.0 + 0.17 * len(names), 160)), layout="constrained")
    fig.suptitle(title)
    ax = fig.add_subplot()
    ax.set_xlabel(xlabel)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_ylim(max(len(names), 1) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    return fig, ax


def _values(channels: list[dict], key: str) -> np.ndarray:
    return np.array([c[key] for c in channels if c.get(key) is not None], dtype=np.float64)


def activation_ranges(layers: dict[str, dict]) -> bytes:
    """Per layer: full min..max bar, the channels' p1..p99 span and the median channel mean."""
    names = list(layers)
    fig, ax = _layer_axes(names, "Activation ranges per layer", "value (symlog)")
    for y, name in enumerate(names):
        ch = layers[name]["channels"]
        lo, hi, p1, p99, mean = (_values(ch, k) for k in ("min", "max", "p1", "p99", "mean"))
        if lo.size:
            ax.hlines(y, lo.min(), hi.max(), color="#9ecae1", linewidth=5)
            ax.hlines(y, np.median(p1), np.median(p99), color="#08519c", linewidth=2.5)
            ax.plot(np.median(mean), y, "o", color="#f16913", markersize=3)
    ax.set_xscale("symlog", linthresh=1e-2)
    ax.legend(handles=[ax.plot([], [], color=c, linewidth=w, label=label)[0] for c, w, label in (
        ("#9ecae1", 6, "min..max"), ("#08519c", 3, "median channel p1..p99"))]
        + [ax.plot([], [], "o", color="#f16913", label="median channel mean")[0]], **_LEGEND)
    return _png(fig)


def flag_counts(layers: dict[str, dict]) -> bytes:
    """Per layer: stacked bars of dead, rarely active, saturated and range-outlier channels."""
    names = list(layers)
    fig, ax = _layer_axes(names, "Flagged channels per layer", "channels")
    bottom = np.zeros(len(names))
    for flag, color in (("dead", "#cb181d"), ("rarely_active", "#fd8d3c"),
                        ("saturated", "#6a51a3"), ("range_outlier", "#238b45")):
        counts = np.array([layers[n]["flag_counts"][flag] for n in names], dtype=float)
        ax.barh(range(len(names)), counts, left=bottom, color=color, label=flag)
        bottom += counts
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(**_LEGEND)
    return _png(fig)


def weight_norms(weights: dict[str, dict]) -> bytes:
    """Per weight tensor: the distribution of filter L2 norms (log scale; zero norms drawn at 1e-12)."""
    names = list(weights)
    fig, ax = _layer_axes(names, "Filter L2 norms per layer", "L2 norm (log)")
    data = [np.maximum(_values(weights[n]["filters"], "l2_norm"), 1e-12) for n in names]
    if names:
        ax.boxplot(data, positions=range(len(names)), widths=0.6, orientation="horizontal",
                   flierprops={"markersize": 3})
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xscale("log")
    return _png(fig)
