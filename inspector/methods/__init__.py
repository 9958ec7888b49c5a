"""Attribution methods: CAM family, gradients, integrated gradients, perturbations, attention.

Adding a method is one small class and one registry line; every method is `Method.explain(access,
x, target, layers, **params)` over the ModelAccess protocol.
"""

from __future__ import annotations

from inspector.errors import InvalidArgument
from inspector.methods.attention import AttentionRollout
from inspector.methods.base import (
    Explanation,
    Method,
    Target,
    describe_targets,
    make_seed,
    target_scores,
)
from inspector.methods.eigencam import FEM, KPCACAM, EigenCAM
from inspector.methods.gradcam import (
    EigenGradCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    XGradCAM,
)
from inspector.methods.gradients import (
    GuidedBackprop,
    GuidedGradCAM,
    InputXGradient,
    Saliency,
)
from inspector.methods.integrated_gradients import IntegratedGradients
from inspector.methods.layers import default_layer
from inspector.methods.linear_cam import CAM
from inspector.methods.metrics import evaluate
from inspector.methods.noise_tunnel import SmoothGrad, SmoothGradSquared, VarGrad
from inspector.methods.perturbation import RISE, Occlusion
from inspector.methods.scorecam import AblationCAM, ReciproCAM, ScoreCAM

METHODS: dict[str, type[Method]] = {
    "cam": CAM,
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
    "kpcacam": KPCACAM,
    "fem": FEM,
    "reciprocam": ReciproCAM,
    "saliency": Saliency,
    "inputxgradient": InputXGradient,
    "smoothgrad": SmoothGrad,
    "smoothgrad_sq": SmoothGradSquared,
    "vargrad": VarGrad,
    "integrated_gradients": IntegratedGradients,
    "guided_backprop": GuidedBackprop,
    "guided_gradcam": GuidedGradCAM,
    "occlusion": Occlusion,
    "rise": RISE,
    "attention_rollout": AttentionRollout,
}


DEFAULT_METHOD = "gradcam"  # what explain runs when no method is named


def get_method(name: str | None = None) -> Method:
    """A fresh instance of the named method (None: DEFAULT_METHOD), or InvalidArgument listing the
    known names."""
    cls = METHODS.get(str(name or DEFAULT_METHOD).strip().lower())
    if cls is None:
        raise InvalidArgument(f"unknown method {name!r}; known methods: {', '.join(METHODS)}", field="method")
    return cls()


__all__ = ["DEFAULT_METHOD", "METHODS", "Explanation", "Method", "Target", "default_layer", "describe_targets", "evaluate",
           "get_method", "make_seed", "target_scores"]
