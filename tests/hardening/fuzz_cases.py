"""Hypothesis strategies and the pass/fail rule shared by test_fuzz.py and scripts/fuzz.py.

Three families: mutated model bytes (bit flips, truncation, protobuf field edits), random
request messages for every RPC (built from the proto descriptors), random image bytes.
A case passes when the server answers with a defined status code and stays healthy.
"""

from __future__ import annotations

import io

import grpc
import numpy as np
import onnx
from google.protobuf import descriptor as fd
from hypothesis import strategies as st
from PIL import Image

from inspector.v1 import inspector_pb2 as pb

DEFINED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
           "PERMISSION_DENIED", "DEADLINE_EXCEEDED", "CANCELLED", "OUT_OF_RANGE", "UNAUTHENTICATED"}
WORDS = ["", "all", "Conv", "Relu", "input", "output", "conv1_out", "relu2_out", "gradcam", "saliency",
         "integrated_gradients", "occlusion", "scorecam", "channel", "layer", "logit", "float32",
         "float16", "int64", "uint8", "bool", "NCHW", "NHWC", "BGR", "cpu", "cuda", "viridis", "jet",
         "deletion", "insertion", "guided_backprop", "auto", "rgb", "../../etc/passwd", "x" * 300]
PARAM_KEYS = ["steps", "batch_size", "baseline", "samples", "window", "stride", "sigma", "lr", "size",
              "percentile", "seed", "layer", "n", "alpha", "jitter", "scales", "decorrelate"]
SERVICE = pb.DESCRIPTOR.services_by_name["Inspector"]


def tiny_model() -> onnx.ModelProto:
    """A model that is mostly structure, so random byte edits mostly hit structure."""
    from factory import CNNBuilder

    b = CNNBuilder(input_shape=(1, 3, 16, 16), seed=7)
    y = b.maxpool(b.relu(b.conv("input", 4)))
    return b.build(b.gemm(b.flatten(b.gap(y)), 3))


@st.composite
def mutated_models(draw, base: bytes) -> bytes:
    """Bit flips, truncations, or an edit of one protobuf field of `base`."""
    kind = draw(st.sampled_from(["flip", "truncate", "edit", "edit"]))
    if kind == "flip":
        data = bytearray(base)
        for pos in draw(st.lists(st.integers(0, len(base) - 1), min_size=1, max_size=8)):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if kind == "truncate":
        return base[:draw(st.integers(0, len(base) - 1))]
    model = onnx.load_from_string(base)
    edit = draw(st.sampled_from(["op", "attr", "dims", "drop_node", "opset", "ir", "rename", "dtype"]))
    node = model.graph.node[draw(st.integers(0, len(model.graph.node) - 1))]
    if edit == "op":
        node.op_type = draw(st.sampled_from(["Conv", "Relu", "Gemm", "Loop", "If", "Scan", "FooBar", ""]))
    elif edit == "attr" and node.attribute:
        attr = node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
        if attr.ints:
            attr.ints[0] = draw(st.integers(-(2 ** 40), 2 ** 40))
        else:
            attr.i = draw(st.integers(-(2 ** 40), 2 ** 40))
    elif edit == "dims" and model.graph.initializer:
        tensor = model.graph.initializer[draw(st.integers(0, len(model.graph.initializer) - 1))]
        tensor.dims[draw(st.integers(0, len(tensor.dims) - 1))] = draw(st.integers(-3, 2 ** 33))
    elif edit == "drop_node":
        model.graph.node.remove(node)
    elif edit == "opset":
        model.opset_import[0].version = draw(st.integers(-1, 40))
    elif edit == "ir":
        model.ir_version = draw(st.integers(-1, 20))
    elif edit == "rename" and node.input:
        node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(WORDS))
    elif edit == "dtype":
        model.graph.input[0].type.tensor_type.elem_type = draw(st.integers(0, 25))
    return model.SerializeToString()


def _scalar(draw, field: fd.FieldDescriptor, model_ids: list[str]):
    t = field.type
    if t == fd.FieldDescriptor.TYPE_STRING:
        if field.name in ("model", "model_id"):
            return draw(st.sampled_from([*model_ids * 6, *(i[:8] for i in model_ids), "", "nope"]))
        return draw(st.sampled_from(WORDS) | st.text(max_size=12))
    if t == fd.FieldDescriptor.TYPE_BYTES:
        return draw(st.binary(max_size=64))
    if t == fd.FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if t in (fd.FieldDescriptor.TYPE_DOUBLE, fd.FieldDescriptor.TYPE_FLOAT):
        return draw(st.floats(allow_nan=True, allow_infinity=True, width=32))
    if t == fd.FieldDescriptor.TYPE_ENUM:
        return draw(st.sampled_from([v.number for v in field.enum_type.values]))
    if field.name in ("steps", "preview_every"):
        return draw(st.integers(-3, 12))
    return draw(st.integers(-3, 40) | st.sampled_from([2 ** 31 - 1, -(2 ** 31), 2 ** 40]))


def fill(draw, message, model_ids: list[str], depth: int = 0) -> None:
    """Set a random subset of `message`'s fields to random values (nested up to depth 3)."""
    if message.DESCRIPTOR.full_name == "google.protobuf.Struct":
        keys = draw(st.lists(st.sampled_from(PARAM_KEYS), max_size=3, unique=True))
        message.update({k: draw(st.integers(-2, 16) | st.floats(-2, 2) | st.sampled_from(WORDS)
                                | st.booleans()) for k in keys})
        return
    if message.DESCRIPTOR.name in ("Tensor", "Input") and draw(st.booleans()):  # well-formed, often
        tensor = message if message.DESCRIPTOR.name == "Tensor" else message.tensor
        n, side = draw(st.integers(1, 2)), draw(st.sampled_from([32, 32, 16]))
        seed = draw(st.integers(0, 2 ** 32 - 1))
        tensor.dtype, tensor.shape[:] = "float32", [n, 3, side, side]
        tensor.data = np.random.default_rng(seed).random((n, 3, side, side), dtype=np.float32).tobytes()
        return
    for field in message.DESCRIPTOR.fields:
        if field.name not in ("model", "input", "header") and not draw(st.booleans()):
            continue
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == 3
        if field.type == fd.FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3 or field.message_type.GetOptions().map_entry:
                continue
            for _ in range(draw(st.integers(0, 3)) if repeated else 1):
                child = getattr(message, field.name).add() if repeated else getattr(message, field.name)
                fill(draw, child, model_ids, depth + 1)
                if not repeated:
                    child.SetInParent()
        elif repeated:
            getattr(message, field.name).extend(
                [_scalar(draw, field, model_ids) for _ in range(draw(st.integers(0, 4)))])
        else:
            setattr(message, field.name, _scalar(draw, field, model_ids))


@st.composite
def random_requests(draw, model_ids: list[str]):
    """(method descriptor, request or list of requests) for any RPC of the service."""
    method = draw(st.sampled_from(list(SERVICE.methods)))
    cls = getattr(pb, method.input_type.name)
    count = draw(st.integers(1, 3)) if method.client_streaming else 1
    requests = []
    for _ in range(count):
        request = cls()
        fill(draw, request, model_ids)
        requests.append(request)
    return method, requests if method.client_streaming else requests[0]


@st.composite
def image_bytes(draw) -> bytes:
    """Random bytes, or a real PNG/JPEG/BMP/GIF truncated or with bytes flipped."""
    kind = draw(st.sampled_from(["random", "truncated", "flipped", "valid"]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    side = draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    out = io.BytesIO()
    image.save(out, format=draw(st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])))
    data = bytearray(out.getvalue())
    if kind == "truncated":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    if kind == "flipped":
        for pos in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=6)):
            data[pos] ^= 0xFF
    return bytes(data)


def call(channel: grpc.Channel, method, request, timeout: float = 10.0) -> str:
    """Send one request (or a list for client-streaming RPCs) with the generated stub's paths."""
    path = f"/{SERVICE.full_name}/{method.name}"
    response_cls = getattr(pb, method.output_type.name)
    kw = dict(request_serializer=lambda m: m.SerializeToString(),
              response_deserializer=response_cls.FromString)
    kind = (method.client_streaming, method.server_streaming)
    factory = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
               (True, False): channel.stream_unary, (True, True): channel.stream_stream}[kind]
    stub = factory(path, **kw)
    try:
        reply = stub(iter(request) if method.client_streaming else request, timeout=timeout)
        if method.server_streaming:
            for _ in reply:
                pass
        return "OK"
    except grpc.RpcError as err:
        return err.code().name


def status_of(fn) -> str:
    """The gRPC status code name a call ends with ("OK" when it returns)."""
    try:
        fn()
        return "OK"
    except grpc.RpcError as err:
        return err.code().name
