"""Make intermediate tensors graph outputs, so one run returns them with the model's outputs.

Original outputs stay first and unchanged. Graph inputs and initializers go through an
Identity node (onnxruntime mishandles an output that is also an input). With `as_float16`,
each float32 tensor is returned through Cast(FLOAT16) inside the graph (docs/probes.md: 30x faster
than numpy's astype), under a derived output name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper

from inspector import errors
from inspector.graph.info import value_infos


@dataclass(frozen=True)
class ExposedModel:
    """The rewritten model and, per requested tensor, the graph output that carries it."""

    model: onnx.ModelProto
    outputs: dict[str, str]


def expose_tensors(model: onnx.ModelProto, names: Sequence[str], *,
                   as_float16: bool = False) -> ExposedModel:
    """A copy of `model` whose outputs also include every tensor in `names`."""
    graph = model.graph
    produced = {o for n in graph.node for o in n.output if o}
    sources = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    missing = [n for n in dict.fromkeys(names) if n not in produced and n not in sources]
    if missing:
        raise errors.InvalidArgument(
            f"cannot expose {', '.join(map(repr, missing))}: no such tensor in the model's main graph",
            field="layers")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    infos = value_infos(model) if names else {}
    taken = produced | sources | {o.name for o in graph.output}
    current = {o.name for o in graph.output}
    mapping: dict[str, str] = {}
    for name in dict.fromkeys(names):
        vi = infos.get(name)
        elem = vi.type.tensor_type.elem_type if vi is not None else 0
        if as_float16 and elem == TensorProto.FLOAT:
            target = _fresh(f"{name}__fp16", taken)
            out.graph.node.append(helper.make_node(
                "Cast", [name], [target], name=_fresh(f"{target}__cast", taken), to=TensorProto.FLOAT16))
            vi = _retyped(vi, TensorProto.FLOAT16)
        elif name in current:
            mapping[name] = name
            continue
        elif name in sources:
            target = _fresh(f"{name}__exposed", taken)
            out.graph.node.append(helper.make_node(
                "Identity", [name], [target], name=_fresh(f"{target}__identity", taken)))
        else:
            target = name
        out.graph.output.append(_output_info(target, vi))
        current.add(target)
        mapping[name] = target
    return ExposedModel(out, mapping)


def _fresh(name: str, taken: set[str]) -> str:
    """`name`, or `name_<k>` if that is already used in the graph; records the result."""
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    taken.add(candidate)
    return candidate


def _retyped(vi: onnx.ValueInfoProto, elem_type: int) -> onnx.ValueInfoProto:
    """A copy of `vi` with another element type and the same shape."""
    copy = onnx.ValueInfoProto()
    copy.CopyFrom(vi)
    copy.type.tensor_type.elem_type = elem_type
    return copy


def _output_info(name: str, vi: onnx.ValueInfoProto | None) -> onnx.ValueInfoProto:
    """Output value_info with the known type (and shape), named `name`.

    A tensor whose type shape inference cannot tell gets a bare entry: onnxruntime runs it,
    onnx.checker would not accept it.
    """
    if vi is None:
        return onnx.ValueInfoProto(name=name)
    tt = vi.type.tensor_type
    shape = ([d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
             if tt.HasField("shape") else None)
    return helper.make_tensor_value_info(name, tt.elem_type, shape)
