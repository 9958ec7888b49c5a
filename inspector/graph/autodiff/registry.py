"""The VJP rule registry: one rule per ONNX op type, registered by the family modules in rules/."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import onnx

if TYPE_CHECKING:
    from .emitter import Emitter

# A rule gets the forward node, the gradient of each output (None where nothing flows back)
# and the emitter; it returns the gradient of each input (None where not needed).
VJP = Callable[[onnx.NodeProto, list[str | None], "Emitter"], list[str | None]]


@dataclass(frozen=True)
class Rule:
    vjp: VJP
    inputs: tuple[int, ...] | None  # differentiable input positions; None = all


RULES: dict[str, Rule] = {}

# Ops whose outputs never carry a gradient (shapes, indices, masks, constants): paths are cut there.
NON_DIFFERENTIABLE = frozenset({
    "Shape", "Size", "Constant", "ConstantOfShape", "Range", "NonZero", "ArgMax", "ArgMin",
    "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Not", "And", "Or", "Xor",
    "IsNaN", "IsInf", "EyeLike", "RandomNormal", "RandomUniform", "RandomNormalLike",
    "RandomUniformLike", "Multinomial", "TopK_indices", "Sign", "Floor", "Ceil", "Round",
    "BitShift", "OneHot",
})


def rule(*op_types: str, inputs: tuple[int, ...] | None = (0,)) -> Callable[[VJP], VJP]:
    """Register `vjp` for each op type; `inputs` lists the input positions a gradient flows to."""

    def register(vjp: VJP) -> VJP:
        for op in op_types:
            RULES[op] = Rule(vjp, inputs)
        return vjp

    return register


def differentiable_inputs(node: onnx.NodeProto) -> list[int]:
    """Input positions of `node` through which a gradient can flow (all for unknown ops)."""
    if node.op_type in NON_DIFFERENTIABLE:
        return []
    found = RULES.get(node.op_type)
    positions = range(len(node.input)) if found is None or found.inputs is None else found.inputs
    return [i for i in positions if i < len(node.input) and node.input[i]]


def attribute(node: onnx.NodeProto, name: str, default=None):
    """The value of attribute `name` of `node` (strings decoded), or `default`."""
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default
