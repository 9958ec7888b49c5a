"""Run a network from intermediate tensors on: make them graph inputs (Ablation-/Recipro-CAM)."""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import helper

from inspector import errors
from inspector.graph.info import value_infos


def with_tensors_as_inputs(model: onnx.ModelProto, names: Sequence[str],
                           outputs: Sequence[str]) -> onnx.ModelProto:
    """A copy where each tensor in `names` is a graph input (its producer's output renamed away)
    and each tensor in `outputs` a graph output; onnxruntime drops the nodes left unused."""
    produced = {o for n in model.graph.node for o in n.output}
    missing = [n for n in names if n not in produced]
    if missing:
        raise errors.InvalidArgument(f"cannot replace {missing}: not computed by a node of the model",
                                     field="layers")
    infos = value_infos(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        for i, name in enumerate(node.output):
            if name in names:
                node.output[i] = f"{name}::replaced"
    for name in names:
        vi = infos.get(name)
        if vi is not None and vi.type.tensor_type.HasField("shape"):
            entry = out.graph.input.add()
            entry.CopyFrom(vi)  # keeps the inferred (symbolic) shape for input checks
        else:
            raise errors.InvalidArgument(f"the shape of {name!r} is unknown, so it cannot be replaced",
                                         field="layers")
    have = {o.name for o in out.graph.output}
    for name in outputs:
        if name not in have:
            vi = infos.get(name)
            elem = vi.type.tensor_type.elem_type if vi is not None else onnx.TensorProto.FLOAT
            out.graph.output.append(helper.make_tensor_value_info(name, elem or onnx.TensorProto.FLOAT, None))
            have.add(name)
    return out
