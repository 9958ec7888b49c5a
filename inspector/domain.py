"""Domain objects of the server: the preprocessing spec, and the model description types
(TensorInfo, LayerInfo, ModelInfo), which live in the one types module the client shares."""

from __future__ import annotations

from dataclasses import dataclass

from inspector_client.types import Dim, LayerInfo, ModelInfo, TensorInfo


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


__all__ = ["Dim", "LayerInfo", "ModelInfo", "PreprocessSpec", "TensorInfo"]
