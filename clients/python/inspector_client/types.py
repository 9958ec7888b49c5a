"""Plain dataclasses the client returns (no protobuf in user code)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Dim = int | str | None


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str | None
    shape: tuple[Dim, ...] | None


@dataclass(frozen=True)
class LayerInfo:
    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[TensorInfo, ...]
    parameter_count: int
    has_weights: bool
    weight_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str | None
    size_bytes: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    opsets: dict[str, int]
    producer: str
    layers: tuple[LayerInfo, ...]
    preprocess: dict
    differentiable: bool
    blocking_ops: tuple[str, ...]
    created: float
    providers: tuple[str, ...]


@dataclass
class Explanation:
    """What `explain` returns; arrays have a leading batch axis (one entry per image)."""

    method: str
    heatmap: np.ndarray                 # [N, H, W] in [0, 1] at input size
    layer_heatmap: np.ndarray | None    # [N, h, w] at layer resolution (CAMs)
    attribution: np.ndarray | None      # input-space methods: raw signed, input's shape
    overlay_png: list[bytes]            # one overlay per image
    score: list[float]
    score_after: list[float] | None
    layer: list[str]                    # the layers used
    target: list[str]                   # per image, e.g. "logits[281]"
    params: dict
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Maximization:
    inputs: np.ndarray          # [N, ...] final images as model input tensors (preprocessed)
    pngs: list[bytes]           # one display-space PNG per channel
    objective: np.ndarray       # [steps, N]
    initial_objective: np.ndarray
    final_objective: np.ndarray
    info: dict = field(default_factory=dict)


@dataclass
class Progress:
    step: int
    total: int
    values: tuple[float, ...]
    message: str = ""
    previews: dict[str, bytes] = field(default_factory=dict)


@dataclass
class StreamedResult:
    """A reassembled ResultChunk stream: header fields plus items by group and name."""

    model_id: str = ""
    providers: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    items: dict[str, dict[str, np.ndarray | bytes]] = field(default_factory=dict)

    def group(self, name: str) -> dict[str, np.ndarray | bytes]:
        return self.items.get(name, {})
