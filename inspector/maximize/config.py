"""What a caller asks for (MaximizeConfig) and gets back (a Step per step while running, then the Climb)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector import errors
from inspector.maximize.objectives import KINDS, Term


@dataclass(frozen=True)
class MaximizeConfig:
    """Every knob has a default that gives recognizable pictures on trained CNNs (Lucid's recipe)."""

    objective: str = "channel"  # channel | neuron | layer | logit | probability
    steps: int = 256
    lr: float = 0.05  # Adam step size
    seed: int = 0
    parameterization: str = "fft"  # fft | pixel
    decorrelate: bool = True  # fixed colour decorrelation before the sigmoid
    decay: float = 1.0  # fft: spectrum scaled by 1 / frequency^decay
    init_sd: float = 0.01
    transforms: bool = True  # random pad/jitter/scale/rotate each step
    pad: int = 12
    jitter: tuple[int, ...] = (8, 4)
    scale: float = 0.1  # zoom drawn from [1 - scale, 1 + scale]
    rotate: float = 10.0  # degrees drawn from [-rotate, rotate]
    l2: float = 0.0  # weight of mean squared distance from grey
    tv: float = 0.0  # weight of total variation
    blur_every: int = 0  # blur the parameters every k steps (0: never)
    blur_sigma: float = 0.5
    diversity: float = 0.0  # weight of Lucid's batch diversity term on the objective's tensor
    position: tuple[int, int] | None = None  # neuron (y, x); None: the center
    terms: tuple[Term, ...] = ()  # extra weighted objectives added to the main one
    preview_every: int = 0  # Step.image every k steps (0: never)
    redirect_steps: int = 16  # silent start: first k steps use deconvnet ReLU gradients

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise errors.InvalidArgument(f"maximize config: {name} {why}", field=name)

        _whole_numbers(self)
        if self.objective not in KINDS:
            bad("objective", f"must be one of {', '.join(KINDS)}, not '{self.objective}'")
        if self.parameterization not in ("fft", "pixel"):
            bad("parameterization", f"must be 'fft' or 'pixel', not '{self.parameterization}'")
        if not 1 <= self.steps <= 100_000:
            bad("steps", f"must be between 1 and 100000, not {self.steps}")
        for name in ("lr", "init_sd", "blur_sigma"):
            if not getattr(self, name) > 0:
                bad(name, f"must be positive, not {getattr(self, name)}")
        for name in ("pad", "blur_every", "preview_every", "redirect_steps", "l2", "tv", "diversity", "scale",
                     "rotate"):
            if getattr(self, name) < 0:
                bad(name, f"must not be negative, not {getattr(self, name)}")
        if any(d < 0 for d in self.jitter) or not self.scale < 1:
            bad("jitter/scale", "needs jitter >= 0 and scale < 1")
        object.__setattr__(self, "terms", tuple(_term(t) for t in self.terms))
        for t in self.terms:
            if t.kind not in KINDS:
                bad("terms", f"kind must be one of {', '.join(KINDS)}, not '{t.kind}'")


_INTS = ("steps", "seed", "pad", "blur_every", "preview_every", "redirect_steps")


def _whole_numbers(cfg: MaximizeConfig) -> None:
    """JSON request parameters arrive as floats: accept 12.0 for 12, refuse 12.5."""
    def whole(name: str, v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
            raise errors.InvalidArgument(f"maximize config: {name} must be a whole number, not {v!r}",
                                         field=name)
        return int(v)

    for name in _INTS:
        object.__setattr__(cfg, name, whole(name, getattr(cfg, name)))
    object.__setattr__(cfg, "jitter", tuple(whole("jitter", d) for d in cfg.jitter))
    if cfg.position is not None:
        object.__setattr__(cfg, "position", tuple(whole("position", v) for v in cfg.position))


def _term(t: Term | dict) -> Term:
    """Terms may come as dicts from JSON request parameters: {kind, layer, channels, weight}."""
    if isinstance(t, Term):
        return t
    try:
        channels = t.get("channels", ())
        channels = (channels,) if isinstance(channels, int | float) else channels
        position = t.get("position")
        return Term(str(t["kind"]), str(t.get("layer", t.get("tensor", ""))),
                    tuple(int(c) for c in channels), float(t.get("weight", 1.0)),
                    tuple(int(v) for v in position) if position is not None else None)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise errors.InvalidArgument(
            f"maximize config: each extra term needs kind, layer, channels and optionally weight "
            f"and position; got {t!r}", field="terms") from exc


@dataclass
class Step:
    """One optimization step: the objective per image as the optimizer saw it."""

    step: int
    objective: np.ndarray  # [N]
    image: np.ndarray | None = None  # uint8 [N, H, W, 3], every `preview_every` steps


@dataclass
class Climb:
    """The result; `inputs[i:i+1]` through the model reproduces `final_objective[i]`."""

    inputs: np.ndarray  # [N, ...] model input tensors (preprocessed)
    images: np.ndarray  # uint8 [N, H, W, 3] display pictures
    objective: np.ndarray  # [steps, N] value per step (on the transformed image)
    initial_objective: np.ndarray  # [N] on the starting noise
    final_objective: np.ndarray  # [N] on the final untransformed images
    layer: str = ""  # the tensor of the main objective (the logits under a final Softmax for "logit")
