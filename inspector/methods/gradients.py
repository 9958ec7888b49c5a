"""Input-gradient methods (Captum's Saliency, InputXGradient, NoiseTunnel smoothgrad, GuidedBackprop,
GuidedGradCam): one backward pass per batch of inputs, attribution of the input's shape."""

from __future__ import annotations

import numpy as np

from inspector.model_access import ModelAccess
from inspector.methods.base import Explanation, Method
from inspector.methods.gradcam import GradCAM
from inspector.methods.maps import positive_int, scale_by_max, scale_maps, unit_float
from inspector.methods.run import Run


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

    def gradients_for(self, access: ModelAccess, layers: list[str]) -> list[str]:
        return [access.input_name]


class Saliency(InputGradientMethod):
    name = "saliency"
    doc = "|d target / d input|, max over channels (Simonyan et al., ICLR-W 2014, arXiv:1312.6034)."

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        return finish_input(run, self.name, input_gradient(run), "absmax", params)


class InputXGradient(InputGradientMethod):
    name = "inputxgradient"
    doc = "input * gradient, |sum over channels| for the map (Shrikumar et al., arXiv:1605.01713)."

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        return finish_input(run, self.name, run.x * input_gradient(run), "abssum", params)


class SmoothGrad(Method):
    name = "smoothgrad"
    uses_gradients = True
    defaults = {"samples": 20, "noise": 0.15, "seed": 0, "batch_size": 16}
    doc = ("Mean gradient over noisy copies, noise std = noise * (max - min) of each image "
           "(Smilkov et al., arXiv:1706.03825).")

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        samples = positive_int(params, "samples")
        noise = unit_float(params, "noise", 0.0, 10.0)
        rng = np.random.default_rng(positive_int(params, "seed", 0))
        flat = run.x.reshape(len(run.x), -1)
        sigma = noise * (flat.max(axis=1) - flat.min(axis=1))
        rows = np.repeat(np.arange(len(run.x)), samples)
        shape = (-1,) + (1,) * (run.x.ndim - 1)

        def noisy(i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
            r = rows[i0:i1]
            eps = rng.standard_normal((i1 - i0, *run.x.shape[1:])).astype(np.float32)
            return run.x[r] + eps * sigma[r].reshape(shape).astype(np.float32), r

        mean = run.gradient_sum(len(rows), noisy, positive_int(params, "batch_size")) / samples
        return finish_input(run, self.name, mean, "absmax", params)


class GuidedBackprop(Method):
    name = "guided_backprop"
    uses_gradients = True
    doc = "Gradient with ReLU passing only positive gradients of active units (Springenberg et al., arXiv:1412.6806)."

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        return finish_input(run, self.name, input_gradient(run, "guided_backprop"), "absmax", params)


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
