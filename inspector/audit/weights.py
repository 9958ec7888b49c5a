"""Weight health: filters that do nothing or repeat each other, ranges, sparsity, BatchNorm anomalies.

Input is `{initializer: (node, op_type, array)}` with one filter (output channel) per row of
`array` along axis 0; `weight_tensors` reads it from a model and orients Gemm/MatMul/ConvTranspose.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from inspector.audit.flags import DEFAULT_THRESHOLDS, AuditThresholds
from inspector.audit.tensors import constant_values
from inspector.graph.info import node_names

_BLOCK = 1024  # rows per block of the cosine matrix, so huge Gemm layers stay within memory


def _filters(node: onnx.NodeProto, w: np.ndarray) -> np.ndarray | None:
    """The weight with output channels on axis 0, or None when the node holds no filters."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Conv" and w.ndim >= 3:
        return w
    if node.op_type == "ConvTranspose" and w.ndim >= 3:
        g = int(attrs.get("group", 1))
        grouped = w.reshape(g, w.shape[0] // g, w.shape[1], *w.shape[2:])  # [g, Cin/g, Cout/g, k..]
        return np.swapaxes(grouped, 1, 2).reshape(g * w.shape[1], w.shape[0] // g, *w.shape[2:])
    if node.op_type == "Gemm" and w.ndim == 2:
        return w if attrs.get("transB", 0) else w.T
    if node.op_type == "MatMul" and w.ndim == 2:
        return w.T
    return None


def weight_tensors(model: onnx.ModelProto) -> dict[str, tuple[str, str, np.ndarray]]:
    """Filter weights (Conv, ConvTranspose, Gemm, 2-D MatMul) as graph.weights.find_weights reads them
    (initializers, Constant nodes, and behind Identity/Cast/DequantizeLinear), one filter per row."""
    from inspector.graph.weights import find_weights

    nodes = dict(zip(node_names(model), model.graph.node, strict=True))
    out = {}
    for ref in find_weights(model):
        if ref.role == "weight" and ref.initializer not in out:
            filters = _filters(nodes[ref.node], ref.array)
            if filters is not None and filters.shape[0] > 0:
                out[ref.initializer] = (ref.node, ref.op_type, filters)
    return out


def _nearest_cosine(rows: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each filter, the most similar other filter of the layer and their cosine (-inf for zero filters)."""
    unit = np.where(norms[:, None] > 0, rows / np.where(norms > 0, norms, 1)[:, None], 0).astype(np.float32)
    best, index = np.full(len(rows), -np.inf), np.full(len(rows), -1)
    for start in range(0, len(rows), _BLOCK):
        sims = unit[start:start + _BLOCK] @ unit.T
        block = np.arange(start, min(start + _BLOCK, len(rows)))
        sims[block - start, block] = -np.inf
        index[block], best[block] = sims.argmax(axis=1), sims.max(axis=1, initial=-np.inf)
    best[norms == 0] = -np.inf
    return best, index


def filter_health(weights: Mapping[str, tuple[str, str, np.ndarray]],
                  thresholds: AuditThresholds = DEFAULT_THRESHOLDS) -> dict[str, dict]:
    """Per layer: filter L2 norms and flags ("near_zero", "duplicate"), range spread, sparsity."""
    report = {}
    for name, (node, op_type, array) in weights.items():
        rows = np.asarray(array, np.float64).reshape(array.shape[0], -1)
        norms = np.linalg.norm(rows, axis=1)
        peaks = np.abs(rows).max(axis=1, initial=0.0)
        median_norm, median_peak = float(np.median(norms)), float(np.median(peaks))
        near_zero = (norms == 0) | (norms < thresholds.near_zero * median_norm)
        cosine, other = _nearest_cosine(rows, norms)
        duplicate = (cosine >= thresholds.duplicate_cosine) & (rows.shape[1] >= thresholds.duplicate_min_size)
        filters = []
        for i in range(len(rows)):
            entry = {"index": i, "l2_norm": float(norms[i]), "max_abs": float(peaks[i]),
                     "flags": [f for f, m in (("near_zero", near_zero), ("duplicate", duplicate)) if m[i]]}
            if duplicate[i]:
                entry["duplicate_of"] = int(other[i])
                entry["cosine"] = float(cosine[i])
            filters.append(entry)
        report[name] = {
            "layer": node, "op_type": op_type, "shape": list(array.shape),
            "sparsity": float(np.mean(rows == 0)) if rows.size else 0.0,
            "range_spread": float(peaks.max() / median_peak) if median_peak > 0 else None,
            "median_l2_norm": median_norm, "filters": filters}
    return report


def batchnorm_params(model: onnx.ModelProto) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """node -> (scale tensor name, scale, running variance) for BatchNormalization nodes with constant parameters."""
    values = constant_values(model)
    out = {}
    for name, node in zip(node_names(model), model.graph.node, strict=True):
        if node.op_type == "BatchNormalization" and len(node.input) >= 5 and \
                node.input[1] in values and node.input[4] in values:
            scale = np.asarray(values[node.input[1]], np.float64).reshape(-1)
            var = np.asarray(values[node.input[4]], np.float64).reshape(-1)
            out[name] = (node.input[1], scale, var)
    return out


def batchnorm_health(params: Mapping[str, tuple[str, np.ndarray, np.ndarray]],
                     thresholds: AuditThresholds = DEFAULT_THRESHOLDS) -> dict[str, dict]:
    """Per BatchNormalization node: channels with a tiny running variance or a huge |scale|."""
    report = {}
    for node, (scale_name, scale, var) in params.items():
        magnitude = np.abs(scale)
        median = float(np.median(magnitude)) if magnitude.size else 0.0
        tiny = var < thresholds.tiny_variance
        huge = (magnitude > thresholds.huge_scale * median) if median > 0 else np.zeros_like(tiny)
        channels = [{"index": i, "scale": float(scale[i]), "variance": float(var[i]),
                     "flags": [f for f, m in (("tiny_variance", tiny), ("huge_scale", huge)) if m[i]]}
                    for i in range(len(scale))]
        report[node] = {"scale": scale_name, "median_abs_scale": median, "channels": channels}
    return report


def filter_stats(w: np.ndarray) -> dict[str, np.ndarray]:
    """Per output filter (axis 0): L2 norm, fraction of exact zeros, min, max."""
    flat = np.asarray(w, np.float64).reshape(w.shape[0], -1) if w.ndim > 1 else \
        np.asarray(w, np.float64).reshape(-1, 1)
    return {"l2_norm": np.linalg.norm(flat, axis=1), "sparsity": (flat == 0).mean(axis=1),
            "min": flat.min(axis=1), "max": flat.max(axis=1)}
