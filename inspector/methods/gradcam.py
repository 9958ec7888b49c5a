"""Gradient-weighted CAMs: each class only says how gradients weight the layer's channels."""

from __future__ import annotations

import numpy as np

from inspector.methods.cam import BaseCAM, CamInput
from inspector.methods.maps import first_component


class GradCAM(BaseCAM):
    name = "gradcam"
    doc = "Channel weights = spatial mean of the gradient (Selvaraju et al., ICCV 2017, arXiv:1610.02391)."

    def channel_weights(self, c: CamInput) -> np.ndarray:
        return c.grad.mean(axis=(2, 3))


class GradCAMPlusPlus(BaseCAM):
    name = "gradcam++"
    doc = "Weights = sum of ReLU(grad) * alpha, second/third-order alphas (Chattopadhay et al., WACV 2018)."

    def channel_weights(self, c: CamInput) -> np.ndarray:
        g2 = c.grad ** 2
        g3 = g2 * c.grad
        total = c.act.sum(axis=(2, 3))[:, :, None, None]
        alpha = g2 / (2 * g2 + total * g3 + 1e-6)
        alpha = np.where(c.grad != 0, alpha, 0.0)
        return (np.maximum(c.grad, 0.0) * alpha).sum(axis=(2, 3))


class XGradCAM(BaseCAM):
    name = "xgradcam"
    doc = "Weights = sum(grad * act) / sum(act), axiom-based (Fu et al., BMVC 2020, arXiv:2008.02312)."

    def channel_weights(self, c: CamInput) -> np.ndarray:
        total = c.act.sum(axis=(2, 3))[:, :, None, None]
        return (c.grad * c.act / (total + 1e-7)).sum(axis=(2, 3))


class HiResCAM(BaseCAM):
    name = "hirescam"
    doc = "Element-wise grad * act summed over channels (Draelos & Carin, arXiv:2011.08891)."

    def weighted_activations(self, c: CamInput) -> np.ndarray:
        return c.grad * c.act


class LayerCAM(BaseCAM):
    name = "layercam"
    doc = "Element-wise ReLU(grad) * act summed over channels (Jiang et al., IEEE TIP 2021)."

    def weighted_activations(self, c: CamInput) -> np.ndarray:
        return np.maximum(c.grad, 0.0) * c.act


class EigenGradCAM(BaseCAM):
    name = "eigengradcam"
    doc = "First principal component of grad * act (pytorch-grad-cam's EigenGradCAM, after Muhammad & Yeasin 2020)."

    def layer_map(self, c: CamInput) -> np.ndarray:
        return first_component(c.grad * c.act)
