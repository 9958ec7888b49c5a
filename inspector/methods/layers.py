"""Layer choice over the ONNX graph: the default CAM layer and checks on user-named layers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from inspector.errors import InvalidArgument
from inspector.graph.batch_axis import graph_batch_axes


def tensor_shapes(model: onnx.ModelProto, input_shape: Sequence[int] | None = None,
                  ) -> dict[str, tuple[int | str | None, ...]]:
    """Shapes of every tensor onnx shape inference can type (dims: int, symbol or None); with
    `input_shape`, the first input's dims are fixed to it first, so dynamic models get real sizes."""
    if input_shape is not None:
        model = with_input_shape(model, input_shape)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is a best effort; fall back to declared shapes
        inferred = model
    g = inferred.graph
    shapes = {}
    for v in [*g.input, *g.value_info, *g.output]:
        t = v.type.tensor_type
        if t.HasField("shape"):
            shapes[v.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                   for d in t.shape.dim)
    return shapes


def with_input_shape(model: onnx.ModelProto, shape: Sequence[int]) -> onnx.ModelProto:
    """A copy whose first non-initializer input has the concrete `shape`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name for i in out.graph.initializer}
    first = next(i for i in out.graph.input if i.name not in inits)
    dims = first.type.tensor_type.shape.dim
    if len(dims) == len(shape):
        for d, size in zip(dims, shape, strict=True):
            d.Clear()
            d.dim_value = int(size)
    del out.graph.value_info[:]  # stale symbolic shapes would win over the new ones
    return out


def ancestors(model: onnx.ModelProto, tensor: str) -> set[str]:
    """Names of the tensors `tensor` depends on (itself included)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    return _reach(tensor, lambda t: producer[t].input if t in producer else ())


def descendants(model: onnx.ModelProto, tensor: str) -> set[str]:
    """Names of the tensors that depend on `tensor` (itself included)."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return _reach(tensor, lambda t: [o for n in consumers.get(t, ()) for o in n.output])


def _reach(start: str, step) -> set[str]:
    """Every tensor reachable from `start` through `step(tensor) -> names` (itself included)."""
    seen, todo = set(), [start]
    while todo:
        t = todo.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        todo.extend(step(t))
    return seen


def _spatial(shape: tuple[int | str | None, ...] | None, image: tuple[int | str | None, ...] | None) -> bool:
    """4-D, more than one position (H*W > 1), not larger than the image and, for a dynamic image size, not fixed
    (rules out reshaped heads such as YOLO's DFL, [N, 1, 4, anchors])."""
    if shape is None or len(shape) != 4:
        return False
    limits: tuple = (0, 0)
    if image is not None and len(image) == 4:
        limits = image[1:3] if image[3] in (1, 3) and image[1] not in (1, 3) else image[2:]

    def fits(d: int | str | None, lim: int | str | None) -> bool:
        if not isinstance(d, int):
            return True
        if not isinstance(lim, int):
            return False  # a fixed size in a dynamic-size image is not a spatial map
        return d >= 1 and (lim <= 0 or d <= lim)

    sizes = [d for d in shape[2:] if isinstance(d, int)]
    extent = len(sizes) < 2 or sizes[0] * sizes[1] > 1  # a 1x12 strip is still a map
    return extent and all(fits(d, lim) for d, lim in zip(shape[2:], limits, strict=True))


def default_layer(model: onnx.ModelProto, input_shape: Sequence[int] | None = None) -> str:
    """The last of `layer_candidates`: the transformer's token layer, else the last feature map."""
    maps, token, _ = layer_candidates(model, input_shape)
    return token or maps[-1]


def layer_candidates(model: onnx.ModelProto, input_shape: Sequence[int] | None = None,
                     ) -> tuple[list[str], str | None, dict]:
    """(feature maps in graph order, a transformer's token layer or None, inferred shapes).

    The default CAM layer is the last feature map on the way from the image input to the first output.

    A feature map is a 4-D tensor with spatial extent and more than one channel (the layer before
    the global pooling / flatten, as pytorch-grad-cam's usual choice: ResNet's layer4[-1]; symbolic
    H, W count as spatial), or, for vision transformers, the token output of a residual block
    ([N, tokens, C] whose tokens form the patch grid, the input of the last attention) when one
    comes later. Its leading dim must be
    the image's batch, and it must depend on the image input (a siamese model's other branch does not).
    """
    from inspector.graph.info import image_first
    from inspector.methods.layouts import grid_for

    if not model.graph.output:
        raise InvalidArgument("the model has no outputs", field="layers")
    needed = ancestors(model, model.graph.output[0].name)
    shapes = tensor_shapes(model, input_shape)
    inits = {i.name for i in model.graph.initializer}
    inputs = image_first(model, [i.name for i in model.graph.input if i.name not in inits])
    if not inputs:
        raise InvalidArgument("the model has no inputs", field="layers")
    downstream = descendants(model, inputs[0])
    image = shapes.get(inputs[0])
    batch = graph_batch_axes(model)  # an LSTM's Y [T, dirs, N, hidden] is 4-D but not a feature map
    size = _image_size(image)

    declared = next((i.type.tensor_type.shape.dim[0] for i in model.graph.input
                     if i.name == inputs[0] and len(i.type.tensor_type.shape.dim)), None)
    fixed = declared.dim_value if declared is not None and declared.HasField("dim_value") else None

    def leads_with_batch(shape) -> bool:
        """Dim 0 is the batch: the image's (or a fixed-batch export's own batch size)."""
        first, lead = shape[0], image[0] if image else None
        if isinstance(first, int) and isinstance(lead, int):
            return first in (lead, fixed)
        if softmaxes and isinstance(lead, int):  # attention models fold windows into dim 0: know it
            return False
        return not (isinstance(first, str) and isinstance(lead, str) and first != lead)

    outputs = {o.name for o in model.graph.output}  # the output itself is what is explained
    # A transformer's last blocks reach the class token only; the input of the last attention
    # carries a gradient on every patch token (pytorch-grad-cam's blocks[-1].norm1).
    softmaxes = [n.output[0] for n in model.graph.node if n.op_type == "Softmax" and n.output[0] in downstream]
    attended = ancestors(model, softmaxes[-1]) if softmaxes else None
    attention = descendants(model, softmaxes[0]) if softmaxes else None
    maps: list[str] = []
    token = None
    for node in model.graph.node:
        for out in node.output:
            if out not in needed or out not in downstream or out in outputs:
                continue
            shape = shapes.get(out)
            if shape is None or len(shape) < 3 or not leads_with_batch(shape) \
                    or batch.get(out, (0,)) not in ((0,), ()):
                continue
            if _spatial(shape, image) and shape[1] != 1:
                if not (attention and out in attention):  # not [N, heads, T, d] inside attention
                    maps.append(out)
            elif (node.op_type == "Add" and len(shape) == 3 and isinstance(shape[1], int) and size
                  and grid_for(shape[1], size) is not None and (attended is None or out in attended)):
                token = out  # a transformer block's token output, before the last attention
    if not maps and token is None:
        raise InvalidArgument("found no feature map (a 4-D tensor with spatial extent, or a transformer's "
                              "token output) between the image input and the first output; name the layer "
                              "to explain with `layers`", field="layers")
    return maps, token, shapes


def _image_size(image) -> tuple[int, int] | None:
    """(H, W) of an image input shape when both are fixed."""
    if image is None or len(image) != 4:
        return None
    hw = image[1:3] if image[3] in (1, 3) and image[1] not in (1, 3) else image[2:]
    return (hw[0], hw[1]) if all(isinstance(d, int) and d > 0 for d in hw) else None


def check_layers(model: onnx.ModelProto, layers: Sequence[str]) -> list[str]:
    """The layers, if each is a node output of the model; otherwise an error naming the unknown ones."""
    known = {o for n in model.graph.node for o in n.output}
    missing = [name for name in layers if name not in known]
    if missing:
        raise InvalidArgument(f"unknown layer tensor(s) {', '.join(missing)}; use the output tensor names "
                              "of the model's nodes (see the layer table)", field="layers")
    return list(layers)


def default_layer_for(access, input_shape: Sequence[int] | None = None) -> str:
    """default_layer, remembered per input shape (shape inference on the whole model is the cost:
    10-200 ms a request otherwise). Where shape inference lost the last maps' sizes (a detector's
    heads after dynamic resizing), one forward pass of zeros measures them: a map that is 1x1 at run
    time is passed over for the last one with spatial extent."""
    shape = tuple(input_shape) if input_shape else None

    def compute() -> str:
        maps, token, shapes = layer_candidates(access.graph, shape)
        if token is not None or shape is None:
            return token or maps[-1]
        unknown = [m for m in maps[-8:] if not all(isinstance(d, int) for d in shapes[m][2:])]
        if not unknown:
            return maps[-1]
        try:
            x = np.zeros(shape, _input_dtype(access))
            sizes = {n: v.shape for n, v in access.forward_exposed(x, unknown).items()}
        except Exception:  # noqa: BLE001 - a probe that cannot run leaves the graph's choice
            return maps[-1]
        for name in reversed(maps):
            real = sizes.get(name, shapes[name])
            if len(real) == 4 and not (isinstance(real[2], int) and isinstance(real[3], int)
                                       and real[2] * real[3] <= 1):
                return name
        return maps[-1]

    memo = getattr(access, "memo", None)
    return memo(("default_layer", shape), compute) if memo else compute()


def _input_dtype(access) -> np.dtype:
    elem = next((i.type.tensor_type.elem_type for i in access.graph.graph.input if i.name == access.input_name), 1)
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem or 1))
