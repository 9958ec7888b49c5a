"""Translate between proto messages and domain values, at the service edge only."""

from __future__ import annotations

import numpy as np
from google.protobuf import json_format, struct_pb2
from inspector_client.preprocess import preprocess_from_message, preprocess_into_message
from inspector_client.types import json_ready

from inspector import errors
from inspector.domain import ModelInfo, TensorInfo
from inspector.inputs import InputData
from inspector.v1 import inspector_pb2 as pb

_DTYPES = {"float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
           "int64", "uint64", "bool"}


def tensor_to_numpy(msg: pb.Tensor, field: str) -> np.ndarray:
    return array_from_parts(msg.dtype, msg.shape, msg.data, field)


def array_from_parts(dtype_name: str, shape, data: bytes, field: str) -> np.ndarray:
    """A tensor sent as dtype + shape + raw little-endian bytes (gRPC and HTTP alike), checked."""
    if dtype_name not in _DTYPES:
        raise errors.InvalidArgument(f"{field}.dtype {dtype_name!r} is not one of {sorted(_DTYPES)}",
                                     field=f"{field}.dtype")
    dtype = np.dtype(dtype_name).newbyteorder("<")
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise errors.InvalidArgument(f"{field}.shape {list(shape)} has a negative dimension", field=field)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected != len(data):
        raise errors.InvalidArgument(
            f"{field} has {len(data)} bytes but dtype {dtype_name} and shape {list(shape)} need "
            f"{expected}", field=field)
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


# Only the fields the caller set, so they override the stored spec field by field.
preprocess_to_dict = preprocess_from_message


def input_to_domain(msg: pb.Input) -> InputData:
    source = msg.WhichOneof("source")
    override = preprocess_to_dict(msg.preprocess) if msg.HasField("preprocess") else None
    if msg.named:
        if source is not None:
            raise errors.InvalidArgument("give either input.named (every input by name) or one "
                                         "tensor/images input, not both", field="input.named")
        return InputData(preprocess=override, named={k: input_to_domain(v) for k, v in msg.named.items()})
    if source == "tensor":
        return InputData(tensor=tensor_to_numpy(msg.tensor, "input.tensor"), preprocess=override)
    if source == "images":
        if not msg.images.images:
            raise errors.InvalidArgument("input.images is empty", field="input.images")
        return InputData(images=list(msg.images.images), preprocess=override)
    raise errors.InvalidArgument("input is missing: set input.tensor or input.images", field="input")


def struct_to_dict(msg: struct_pb2.Struct) -> dict:
    """Struct numbers arrive as floats; integral ones become ints (steps=50, not 50.0)."""

    def fix(v):
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v

    return {k: fix(v) for k, v in json_format.MessageToDict(msg).items()}


def dict_to_struct(data: dict) -> struct_pb2.Struct:
    msg = struct_pb2.Struct()
    msg.update(json_ready(data, max_array=64))  # a Struct carries no large arrays: their shape instead
    return msg


def target_to_domain(msg: pb.Target):
    from inspector.methods.base import Target

    if msg.box and len(msg.box) != 4:
        raise errors.InvalidArgument("target.box needs 4 numbers: y0, x0, y1, x1", field="target.box")
    return Target(
        tensor=msg.tensor or None,
        index=tuple(int(i) for i in msg.index) or None,
        classes=tuple(int(c) for c in msg.classes),
        channel=int(msg.channel) if msg.HasField("channel") else None,
        box=tuple(int(v) for v in msg.box) or None,
        mask=tensor_to_numpy(msg.mask, "target.mask") if msg.HasField("mask") else None,
        seed=tensor_to_numpy(msg.seed, "target.seed") if msg.HasField("seed") else None)


def _tensor_info(t: TensorInfo) -> pb.TensorInfo:
    msg = pb.TensorInfo(name=t.name, dtype=t.dtype or "", rank_known=t.shape is not None)
    for d in t.shape or ():
        dim = msg.shape.add()
        if isinstance(d, int):
            dim.size = d
        elif isinstance(d, str):
            dim.param = d
    return msg


def model_info_to_proto(info: ModelInfo) -> pb.ModelInfo:
    msg = pb.ModelInfo(id=info.id, name=info.name or "", size_bytes=info.size_bytes,
                       producer=info.producer, differentiable=bool(info.differentiable),
                       blocking_ops=list(info.blocking_ops), created=info.created,
                       providers=list(info.providers), names=list(info.names))
    msg.inputs.extend(_tensor_info(t) for t in info.inputs)
    msg.outputs.extend(_tensor_info(t) for t in info.outputs)
    msg.opsets.update({k: int(v) for k, v in info.opsets.items()})
    for layer in info.layers:
        msg.layers.add(name=layer.name, op_type=layer.op_type, inputs=list(layer.inputs),
                       outputs=[_tensor_info(t) for t in layer.outputs],
                       parameter_count=int(layer.parameter_count), has_weights=layer.has_weights,
                       weight_names=list(layer.weight_names))
    preprocess_into_message(info.preprocess, msg.preprocess)
    return msg
