"""The original CAM: layer -> global average pooling -> linear classifier; weights read from the graph."""

from __future__ import annotations

import numpy as np
import onnx

from inspector.errors import InvalidArgument
from inspector.graph.constants import Constants
from inspector.methods.cam import BaseCAM, CamInput

PASS_THROUGH = {"Flatten", "Reshape", "Squeeze", "Identity"}


def linear_head(model: onnx.ModelProto, layer: str) -> tuple[np.ndarray, set[str]]:
    """(W [K, C], the classifier's output and the tensors that only rescale it: bias, softmax, sigmoid)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    consts = Constants(model.graph)  # initializers, Constant nodes, and Cast/DequantizeLinear chains

    def only(tensor: str) -> onnx.NodeProto | None:
        nodes = [n for n in consumers.get(tensor, []) if n.op_type != "Shape"]
        return nodes[0] if len(nodes) == 1 else None

    node = only(layer)
    if node is None or node.op_type not in ("GlobalAveragePool", "ReduceMean"):
        raise InvalidArgument(f"cam needs layer {layer} to feed one global average pooling followed by a linear "
                              "classifier; use gradcam for other architectures", field="layers")
    node = only(node.output[0])
    while node is not None and node.op_type in PASS_THROUGH:
        node = only(node.output[0])
    if node is None or node.op_type not in ("Gemm", "MatMul") or consts.root(node.input[1]) is None:
        raise InvalidArgument(f"cam found no Gemm/MatMul with constant weights after the pooling of {layer}; "
                              "use gradcam for this model", field="layers")
    w = np.asarray(consts.value(node.input[1]), np.float32)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Gemm":
        w = (w if attrs.get("transB", 0) else w.T) * float(attrs.get("alpha", 1.0))
    else:
        w = w.T
    aliases = {node.output[0]}
    follow = only(node.output[0])
    while follow is not None and (follow.op_type in ("Identity", "Softmax", "Sigmoid") or
                                  (follow.op_type == "Add" and any(consts.root(i) for i in follow.input))):
        aliases.add(follow.output[0])
        follow = only(follow.output[0])
    return w, aliases


class CAM(BaseCAM):
    name = "cam"
    uses_gradients = False
    doc = ("Class activation mapping: the classifier's weights of the target class over the last conv "
           "layer; a probability target uses its logit's weights (Zhou et al., CVPR 2016, arXiv:1512.04150).")

    def channel_weights(self, c: CamInput) -> np.ndarray:
        w, aliases = linear_head(c.run.access.graph, c.layer)
        if c.run.tensor not in aliases:
            raise InvalidArgument(f"cam explains the classifier output ({sorted(aliases)[0]}); the target tensor is "
                                  f"{c.run.tensor}", field="tensor")
        if w.shape[1] != c.act.shape[1]:
            raise InvalidArgument(f"the classifier after {c.layer} reads {w.shape[1]} features but the layer has "
                                  f"{c.act.shape[1]} channels", field="layers")
        seed = c.run.seed_rows(c.rows)
        seed = seed[None] if c.run.batch_axis is None else np.moveaxis(seed, c.run.batch_axis, 0)
        return seed.reshape(len(c.rows), -1) @ w
