"""The optimization loop: parameters -> RGB -> random transform -> model input -> gradient -> Adam.

One backward call per step and tensor gives both the objective and its input gradient (a forward
first only for objectives whose seed depends on the activation: layer, probability, diversity).
The gradient goes back through the preprocessing, the transform and the parameterization in numpy.
When a hidden unit is silent on the starting noise (objective 0, no gradient through its ReLUs),
the first `redirect_steps` use the deconvnet ReLU rule, like Lucid's early ReLU redirection.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

import numpy as np

from inspector import errors
from inspector.maximize import penalties
from inspector.maximize.adam import Adam
from inspector.maximize.config import Climb, MaximizeConfig, Step
from inspector.maximize.objectives import LINEAR, Term, diversity, group_by_tensor
from inspector.maximize.param import FourierImage, PixelImage
from inspector.maximize.pullback import InputPullback
from inspector.maximize.warp import Resample, Robustness
from inspector.model_access import ModelAccess

ToInput = Callable[[np.ndarray], np.ndarray]


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Display RGB in [0, 1] -> uint8."""
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def class_scores(access: ModelAccess) -> str:
    """The first output, or the logits feeding it when the model ends in Softmax (over axis 1)."""
    name = access.output_names[0]
    producers = {o: n for n in access.graph.graph.node for o in n.output}
    node = producers.get(name)
    while node is not None and node.op_type == "Identity":
        node = producers.get(node.input[0])
    if node is not None and node.op_type == "Softmax":
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        if axis in (1, -1):
            return node.input[0]
    return name


def _terms(access: ModelAccess, layer: str, channels: Sequence[int], cfg: MaximizeConfig) -> list[Term]:
    if cfg.objective in ("logit", "probability") and not layer:
        layer = class_scores(access)
    if not layer:
        raise errors.InvalidArgument("name the layer whose units to maximize", field="layer")
    n = len(channels) or (1 if cfg.objective == "layer" else 0)
    if n == 0:
        raise errors.InvalidArgument("give at least one channel to maximize", field="channels")
    main = Term(cfg.objective, layer, tuple(int(c) for c in channels) or (0,), 1.0, cfg.position)
    extra = [Term(t.kind, t.tensor, t.channels * n if len(t.channels) == 1 else t.channels,
                  t.weight, t.position) for t in cfg.terms]
    for t in extra:
        if t.kind != "layer" and len(t.channels) != n:
            raise errors.InvalidArgument(
                f"extra objective on '{t.tensor}' has {len(t.channels)} channels for {n} images; "
                "give one channel, or one per image", field="terms")
    known = {o for node in access.graph.graph.node for o in node.output} | set(access.output_names)
    for t in [main, *extra]:
        if t.tensor not in known:
            raise errors.InvalidArgument(
                f"layer '{t.tensor}' is not a tensor of this model; pick a node output from the "
                "layer table", field="layer")
    return [main, *extra]


def _evaluate(access: ModelAccess, terms: list[Term], x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Objective per image on plain forward passes; also returns the tensors read."""
    out = access.forward(x, fetch=list(group_by_tensor(terms)))
    for t in terms:
        t.check(out[t.tensor])
    return sum(t.value(out[t.tensor]) for t in terms), out


class _Ascent:
    """Objective values and d(objective)/d(model input) for one batch."""

    def __init__(self, access: ModelAccess, terms: list[Term], acts: dict, div: float) -> None:
        self.access, self.terms, self.div = access, terms, div
        self.no_redirect = False
        self.groups = group_by_tensor(terms)
        self.main = terms[0].tensor
        self.fixed = {  # seeds of linear groups never change
            name: sum(t.seed(np.zeros_like(acts[name])) for t in group)
            for name, group in self.groups.items()
            if all(t.kind in LINEAR for t in group) and not (div and name == self.main)}

    def _backward(self, x: np.ndarray, name: str, seed: np.ndarray, policy: str) -> dict:
        """One backward call; a model the redirect policy cannot serve falls back to standard."""
        wrt = [self.access.input_name]
        if policy != "standard" and not self.no_redirect:
            try:
                return self.access.backward(x, start=name, seed=seed, wrt=wrt, policy=policy,
                                            fetch=[name])
            except errors.FailedPrecondition:
                self.no_redirect = True
        return self.access.backward(x, start=name, seed=seed, wrt=wrt, fetch=[name])

    def __call__(self, x: np.ndarray, policy: str = "standard") -> tuple[np.ndarray, np.ndarray]:
        values, grad = np.zeros(len(x), np.float32), np.zeros(x.shape, np.float32)
        for name, group in self.groups.items():
            seed = self.fixed.get(name)
            if seed is None:
                a = self.access.forward(x, fetch=[name])[name]
                seed = sum(t.seed(a) for t in group)
                if self.div and name == self.main:
                    seed = seed - self.div * diversity(a)[1]
            out = self._backward(x, name, seed, policy)
            values += sum(t.value(out[name]) for t in group)
            grad += out[self.access.input_name]
        return values, grad


def maximize(access: ModelAccess, layer: str, channels: Sequence[int], config: MaximizeConfig,
             to_input: ToInput, input_size: tuple[int, int]) -> Generator[Step, None, Climb]:
    """Climb the objective from noise; yields Step each step and returns the Climb.

    Bad layers, channels, sizes and preprocessing raise here, before the generator is returned.
    """
    if len(input_size) != 2 or min(input_size) < 8:
        raise errors.InvalidArgument(f"input size {input_size} is too small; use at least 8x8",
                                     field="input_size")
    size = (int(input_size[0]), int(input_size[1]))
    terms = _terms(access, layer, channels, config)
    pull = InputPullback(to_input, size)
    param = (FourierImage(size, config.decorrelate, config.decay)
             if config.parameterization == "fft" else PixelImage(size, config.decorrelate))
    rng = np.random.default_rng(config.seed)
    p = param.init(rng, len(terms[0].channels), config.init_sd)
    initial, acts = _evaluate(access, terms, np.asarray(to_input(param.rgb(p))))
    ascent = _Ascent(access, terms, acts, config.diversity)
    return _climb(access, config, to_input, size, param, p, rng, pull, ascent, initial)


def _climb(access: ModelAccess, config: MaximizeConfig, to_input: ToInput, size: tuple[int, int],
           param: FourierImage | PixelImage, p: np.ndarray, rng: np.random.Generator,
           pull: InputPullback, ascent: _Ascent, initial: np.ndarray,
           ) -> Generator[Step, None, Climb]:
    robust = Robustness(config.pad, config.jitter, config.scale, config.rotate)
    adam = Adam(config.lr)
    hidden = ascent.terms[0].kind in ("channel", "neuron", "layer")
    redirect = config.redirect_steps if hidden and np.any(initial <= 0) else 0
    history = []
    for step in range(config.steps):
        access.check_cancelled()
        rgb = param.rgb(p)
        warp = Resample(robust.sample(rng, size, size), size) if config.transforms else None
        policy = "deconvnet" if step < redirect else "standard"
        values, grad_x = ascent(np.asarray(to_input(warp(rgb) if warp else rgb)), policy)
        grad = pull(grad_x)
        grad = warp.adjoint(grad) if warp else grad
        for weight, prior in ((config.l2, penalties.l2), (config.tv, penalties.total_variation)):
            if weight:
                grad = grad - weight * prior(rgb)[1]
        p = adam.step(p, param.pullback(p, grad, rgb))
        if config.blur_every and (step + 1) % config.blur_every == 0:
            p = param.blur(p, config.blur_sigma)
        history.append(values)
        show = config.preview_every and (step + 1) % config.preview_every == 0
        yield Step(step, values, to_uint8(param.rgb(p)) if show else None)
    rgb = param.rgb(p)
    inputs = np.asarray(to_input(rgb))
    final, _ = _evaluate(access, ascent.terms, inputs)
    return Climb(inputs=inputs, images=to_uint8(rgb), objective=np.stack(history),
                        initial_objective=initial, final_objective=final, layer=ascent.terms[0].tensor)
