"""External-data files an ONNX model references, checked to stay inside the model's folder.

onnx.load(..., load_external_data=False) checks nothing (docs/probes.md section 5), so the store
refuses absolute locations, ".." and symlinks that leave the folder before copying anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from inspector import errors


def external_locations(model: onnx.ModelProto) -> list[str]:
    """Every distinct external-data `location` in the model (main graph and subgraphs)."""
    found: dict[str, None] = {}
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in tensor.external_data}
            found[entries.get("location", "")] = None
    return list(found)


def safe_source(folder: Path, location: str) -> Path:
    """The file `location` names inside `folder`; InvalidArgument if it points anywhere else."""
    if (not location or PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
            or PureWindowsPath(location).drive):
        raise errors.InvalidArgument(
            f"external data location '{location}' is not a relative path inside the model's folder")
    if ".." in location.replace("\\", "/").split("/"):
        raise errors.InvalidArgument(
            f"external data location '{location}' uses '..'; keep data files next to the model")
    base = Path(os.path.realpath(folder))
    source = Path(os.path.realpath(folder / location))
    if not source.is_relative_to(base):
        raise errors.InvalidArgument(
            f"external data location '{location}' resolves (through a symbolic link) outside the "
            "model's folder; copy the data file into the folder instead")
    if not source.is_file():
        raise errors.InvalidArgument(
            f"external data file '{location}' referenced by the model is missing from its folder")
    return source


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and Constant/attribute tensors of a graph and its subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from _tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _tensors(g)
