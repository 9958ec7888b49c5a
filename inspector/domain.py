"""Domain objects shared by the core, the methods and the service edge (no protobuf here)."""

from __future__ import annotations

from dataclasses import dataclass, field

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclass(frozen=True)
class TensorInfo:
    """Name, element type (numpy dtype name, e.g. "float32") and shape of one tensor."""

    name: str
    dtype: str | None
    shape: tuple[Dim, ...] | None  # None: rank unknown


@dataclass(frozen=True)
class LayerInfo:
    """One node of the graph, as the layer table shows it."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[TensorInfo, ...]
    parameter_count: int
    has_weights: bool  # holds conv/gemm weights (also through Identity/DequantizeLinear/Cast)
    weight_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreprocessSpec:
    """How encoded images become the model's input tensor (see README, "Inputs").

    resize: int -> shorter side to that size keeping aspect (torchvision Resize); (H, W) -> exact.
    None everywhere means: resize exactly to the model's fixed input size, scale 1/255, RGB,
    layout read from the input shape, dtype of the input.
    """

    resize: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str = "RGB"  # or "BGR"
    layout: str | None = None  # "NCHW" / "NHWC"; None: read from the input shape
    dtype: str | None = None  # numpy dtype name; None: the input's dtype


@dataclass(frozen=True)
class ModelInfo:
    """What a client sees about a stored model."""

    id: str  # sha256 hex of the model bytes
    name: str | None
    size_bytes: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    opsets: dict[str, int]
    producer: str
    layers: tuple[LayerInfo, ...] = ()
    preprocess: PreprocessSpec | None = None
    differentiable: bool | None = None
    blocking_ops: tuple[str, ...] = ()  # "OpType (node name)" for ops without a VJP rule
    created: float = 0.0


@dataclass
class RunMetadata:
    """What every response says about how it was computed."""

    model_id: str
    providers: tuple[str, ...]  # execution providers actually used, in order
    warnings: list[str] = field(default_factory=list)
