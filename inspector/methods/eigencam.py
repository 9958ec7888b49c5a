"""Gradient-free CAMs over the activations alone: they run on models the engine cannot differentiate."""

from __future__ import annotations

import numpy as np

from inspector.methods.cam import BaseCAM, CamInput
from inspector.methods.maps import first_component, kernel_first_component, unit_float


class EigenCAM(BaseCAM):
    class_agnostic = True
    name = "eigencam"
    uses_gradients = False
    doc = "First principal component of the activations (Muhammad & Yeasin, IJCNN 2020, arXiv:2008.00299)."

    def layer_map(self, c: CamInput) -> np.ndarray:
        return first_component(c.act)


class KPCACAM(BaseCAM):
    class_agnostic = True
    name = "kpcacam"
    uses_gradients = False
    defaults = {**BaseCAM.defaults, "kernel": "sigmoid", "gamma": None}
    doc = "First kernel-PCA component of the activations (Karmani et al., arXiv:2410.00267)."

    def layer_map(self, c: CamInput) -> np.ndarray:
        return kernel_first_component(c.act, str(c.params["kernel"]), c.params.get("gamma"))


class FEM(BaseCAM):
    class_agnostic = True
    name = "fem"
    uses_gradients = False
    defaults = {**BaseCAM.defaults, "k": 2.0}
    doc = ("Feature Explanation Method: channels weighted by the share of positions above mean + k*std "
           "(Fuad et al., IPTA 2020).")

    def channel_weights(self, c: CamInput) -> np.ndarray:
        mean = c.act.mean(axis=(2, 3), keepdims=True)
        std = c.act.std(axis=(2, 3), keepdims=True)
        k = unit_float(c.params, "k", 0.0, 100.0)
        return (c.act > mean + k * std).mean(axis=(2, 3))
