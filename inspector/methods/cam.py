"""The CAM family's shared shape (as pytorch-grad-cam's BaseCAM): subclasses only say how the
channels of a layer are weighted; this class fetches activations and gradients, applies
ReLU, upsamples, scales per image, averages several layers, and does aug / eigen smoothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.errors import InvalidArgument
from inspector.methods.base import Explanation, Method
from inspector.methods.layers import check_layers, default_layer_for
from inspector.methods.layouts import LayerLayout, layer_layout
from inspector.methods.maps import first_component, flag, scale_maps, upsample
from inspector.methods.run import Run
from inspector.model_access import ModelAccess

AUGMENTATIONS = [(flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1)]


@dataclass
class CamInput:
    """What a subclass sees for one layer: activations [N,C,h,w], gradients (or None), the inputs;
    `layout` and `raw` (the activations as the layer has them) for edits fed back to the model."""

    run: Run
    x: np.ndarray
    rows: np.ndarray
    layer: str
    act: np.ndarray
    grad: np.ndarray | None
    params: dict[str, object]
    layout: LayerLayout = LayerLayout("NCHW")
    raw: np.ndarray | None = None

    def to_layer(self, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Edited [M, C, h, w] activations of images `rows` in the layer's own layout."""
        if self.raw is None:
            return values
        return self.layout.from_maps(values, np.take(self.raw, rows, axis=self.layout.batch_axis))


class BaseCAM(Method):
    """Class activation maps over one or more layers; `channel_weights` is the method."""

    uses_gradients = True
    defaults: dict[str, object] = {"aug_smooth": False, "eigen_smooth": False}

    def layers_for(self, access: ModelAccess, layers: list[str], input_shape: tuple[int, ...] = ()) -> list[str]:
        return check_layers(access.graph, layers) if layers else [default_layer_for(access, input_shape)]

    def fetch_for(self, access: ModelAccess, layers: list[str]) -> list[str]:
        from inspector.methods.attention import squeeze_excitation_gates

        return [*layers, *squeeze_excitation_gates(access.graph)]

    def gradients_for(self, access: ModelAccess, layers: list[str]) -> list[str]:
        return list(layers) if self.uses_gradients else []

    def channel_weights(self, c: CamInput) -> np.ndarray:
        """[N, C] weights of the layer's channels (Grad-CAM: mean gradient)."""
        raise NotImplementedError

    def weighted_activations(self, c: CamInput) -> np.ndarray:
        """[N, C, h, w] activations times their weights; summed over C for the map."""
        return c.act * self.channel_weights(c)[:, :, None, None]

    def layer_map(self, c: CamInput) -> np.ndarray:
        """[N, h, w] map before ReLU; eigen_smooth takes the first principal component instead of the sum."""
        weighted = self.weighted_activations(c)
        return first_component(weighted) if c.params["eigen_smooth"] else weighted.sum(axis=1)

    def layer_maps(self, run: Run, x: np.ndarray, layers: list[str], params: dict[str, object],
                   outputs: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """ReLU'd [N, h, w] map of each layer for the batch x (seeded like the original images)."""
        rows = np.arange(len(x))
        acts = outputs if outputs is not None else run.forward(x, layers)
        grads = run.gradients(x, layers, rows) if self.uses_gradients else {}
        maps = []
        for layer in layers:
            raw = np.asarray(acts[layer], np.float32)
            layout = layer_layout(run.access, layer, raw, x, run.size)
            grad = grads.get(layer)
            if grad is not None and np.shape(grad) != raw.shape:
                raise InvalidArgument(f"layer '{layer}' has shape {list(raw.shape)} but its gradient "
                                      f"{list(np.shape(grad))}; name another layer", field="layers")
            c = CamInput(run, x, rows, layer, layout.to_maps(raw),
                         None if grad is None else layout.to_maps(np.asarray(grad, np.float32)), params,
                         layout, raw)
            maps.append(np.maximum(np.nan_to_num(self.layer_map(c)), 0.0).astype(np.float32))
        return maps

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        params = {**params, "aug_smooth": flag(params, "aug_smooth"), "eigen_smooth": flag(params, "eigen_smooth")}
        maps = self.layer_maps(run, run.x, layers, params, run.outputs)
        heat = self.combine(maps, run.size)
        if params["aug_smooth"]:
            heat = scale_maps(np.mean([heat if (f, k) == (False, 1.0) else self.augmented(run, layers, params, f, k)
                                       for f, k in AUGMENTATIONS], axis=0))
        extras = {f"channel_attention/{t}": run.outputs[t].reshape(len(run.x), -1)
                  for t in run.outputs if t not in layers and t != run.tensor
                  and t not in run.access.output_names}
        return run.finish(self.name, heat, params, layers, layer_heatmap=scale_maps(maps[0]), extras=extras)

    def combine(self, maps: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """Upsample and scale each layer's map, average the layers, scale again."""
        scaled = [scale_maps(upsample(m, size)) for m in maps]
        return scale_maps(np.mean(scaled, axis=0))

    def augmented(self, run: Run, layers: list[str], params: dict[str, object], flip: bool,
                  factor: float) -> np.ndarray:
        """The input-size map of one test-time augmentation (hflip x brightness), mapped back."""
        axis = 2 if run.layout == "NHWC" else 3
        x = run.x * np.float32(factor)
        x = np.flip(x, axis=axis) if flip else x
        heat = self.combine(self.layer_maps(run, np.ascontiguousarray(x), layers, params), run.size)
        return np.flip(heat, axis=2) if flip else heat
