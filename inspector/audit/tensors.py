"""Which tensors an audit watches by default, and where each one saturates.

Plain functions over a ModelProto (no onnxruntime): the audit exposes these tensors and
counts how often their values sit at a bound (Clip / ReLU6, HardSigmoid, Sigmoid).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from inspector.errors import InvalidArgument

AUDITED_OPS = ("Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Add", "Conv")
_UNIT_RANGE_OPS = ("HardSigmoid", "Sigmoid")


def input_dependent(model: onnx.ModelProto) -> set[str]:
    """Tensors computed from the model's real inputs (not from weights and constants alone)."""
    inits = {t.name for t in model.graph.initializer}
    live = {i.name for i in model.graph.input if i.name not in inits}
    for n in model.graph.node:  # nodes of a valid model are topologically sorted
        if any(i in live for i in n.input):
            live.update(o for o in n.output if o)
    return live


def default_audit_tensors(model: onnx.ModelProto) -> list[str]:
    """Every input-dependent output of a Relu, Clip, HardSwish, HardSigmoid, Sigmoid, Add or Conv, in graph order."""
    live = input_dependent(model)
    return [n.output[0] for n in model.graph.node
            if n.op_type in AUDITED_OPS and n.output and n.output[0] in live]


def tensor_op_types(model: onnx.ModelProto) -> dict[str, str]:
    """Map each node output to the op type that produces it."""
    return {o: n.op_type for n in model.graph.node for o in n.output if o}


def constant_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node values, by tensor name (Clip bounds; weights of exporters that use Constant)."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value":
                    values[n.output[0]] = numpy_helper.to_array(a.t)
                elif a.name in ("value_float", "value_int"):
                    values[n.output[0]] = np.asarray(onnx.helper.get_attribute_value(a))
    return values


def _clip_bounds(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> tuple[float, float] | None:
    """Clip's (min, max) from attributes (opset < 11) or constant inputs; None if any is dynamic."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    lo, hi = float(attrs.get("min", -math.inf)), float(attrs.get("max", math.inf))
    for position, default in ((1, -math.inf), (2, math.inf)):
        if len(node.input) > position and node.input[position]:
            name = node.input[position]
            if name not in constants:
                return None
            value = float(np.asarray(constants[name]).reshape(-1)[0])
            lo, hi = (value, hi) if position == 1 else (lo, value)
        elif len(node.input) > 1:
            lo, hi = (default, hi) if position == 1 else (lo, default)
    return None if (math.isinf(lo) and math.isinf(hi)) else (lo, hi)


def saturation_bounds(model: onnx.ModelProto) -> dict[str, tuple[float, float]]:
    """(lo, hi) per saturating tensor: Clip (ReLU6 style), HardSigmoid and Sigmoid (0, 1).

    A value counts as saturated when it is <= lo or >= hi; an open side is +-inf.
    """
    constants = constant_values(model)
    bounds: dict[str, tuple[float, float]] = {}
    for n in model.graph.node:
        if not n.output or not n.output[0]:
            continue
        if n.op_type == "Clip":
            clip = _clip_bounds(n, constants)
            if clip is not None:
                bounds[n.output[0]] = clip
        elif n.op_type in _UNIT_RANGE_OPS:
            bounds[n.output[0]] = (0.0, 1.0)
    return bounds


def check_tensor_names(model: onnx.ModelProto, names: list[str]) -> None:
    """Fail early, naming the first unknown tensor and a few that exist."""
    known = tensor_op_types(model)
    for name in names:
        if name not in known:
            sample = ", ".join(default_audit_tensors(model)[:5]) or ", ".join(list(known)[:5])
            raise InvalidArgument(
                f"Tensor {name!r} is not produced by any node of the model; "
                f"pick node outputs such as {sample}.", field="layers")
