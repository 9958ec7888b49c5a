"""Input-gradient methods (Captum's Saliency, InputXGradient, GuidedBackprop, GuidedGradCam):
one backward pass per batch of inputs, attribution of the input's shape."""

from __future__ import annotations

import numpy as np

from inspector.methods.base import Explanation, Method
from inspector.methods.gradcam import GradCAM
from inspector.methods.maps import scale_by_max, scale_maps
from inspector.methods.run import Run
from inspector.model_access import ModelAccess


def finish_input(run: Run, method: str, attribution: np.ndarray, how: str, params: dict[str, object],
                 **kwargs: object) -> Explanation:
    """Heatmap = the channel-reduced attribution scaled by its per-image maximum."""
    heat = scale_by_max(run.to_spatial(attribution, how))
    return run.finish(method, heat, params, attribution=attribution, **kwargs)


def input_gradient(run: Run, policy: str = "standard") -> np.ndarray:
    name = run.access.input_name
    return np.asarray(run.gradients(run.x, [name], policy=policy)[name], np.float32)


class InputGradientMethod(Method):
    """Methods built on d(target)/d(input) at x: with a default target, the first run gives it."""

    uses_gradients = True
    reduce = "absmax"  # how the attribution becomes a map (Run.to_spatial); the noise tunnel reuses it

    def gradients_for(self, access: ModelAccess, layers: list[str]) -> list[str]:
        return [access.input_name]


class Saliency(InputGradientMethod):
    name = "saliency"
    doc = "|d target / d input|, max over channels (Simonyan et al., ICLR-W 2014, arXiv:1312.6034)."

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        return finish_input(run, self.name, input_gradient(run), self.reduce, params)


class InputXGradient(InputGradientMethod):
    name = "inputxgradient"
    doc = "input * gradient, |sum over channels| for the map (Shrikumar et al., arXiv:1605.01713)."
    reduce = "abssum"

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        return finish_input(run, self.name, run.x * input_gradient(run), self.reduce, params)


class GuidedBackprop(Method):
    name = "guided_backprop"
    uses_gradients = True
    reduce = "absmax"
    doc = "Gradient with ReLU passing only positive gradients of active units (Springenberg et al., arXiv:1412.6806)."

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        return finish_input(run, self.name, input_gradient(run, "guided_backprop"), self.reduce, params)


class GuidedGradCAM(GradCAM):
    """Grad-CAM's layer choice and single first run (layers and their gradients), then guided backprop."""

    name = "guided_gradcam"
    defaults: dict[str, object] = {}
    doc = "Guided backprop times the upsampled Grad-CAM map (Selvaraju et al., ICCV 2017)."

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        gradcam = GradCAM()
        maps = gradcam.layer_maps(run, run.x, layers, {"aug_smooth": False, "eigen_smooth": False}, run.outputs)
        cam = gradcam.combine(maps, run.size)
        weight = cam[..., None] if run.layout == "NHWC" else cam[:, None]
        attribution = input_gradient(run, "guided_backprop") * weight
        return finish_input(run, self.name, attribution, "absmax", params, layers=layers,
                            layer_heatmap=scale_maps(maps[0]))
