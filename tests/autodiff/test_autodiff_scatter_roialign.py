"""ScatterElements, ScatterND, GatherND and RoiAlign rules against central differences
(float64)."""

from __future__ import annotations

import numpy as np
import pytest
from autodiff_reference import check_op, session, single_op
from onnx import helper

from inspector.errors import FailedPrecondition
from inspector.graph.autodiff import build_gradient_model


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def unique_along(rng: np.random.Generator, shape: tuple[int, ...], axis: int, size: int,
                 negative: bool) -> np.ndarray:
    """Indices of `shape`, distinct along `axis` (no position written twice), some negative."""
    moved = list(shape)
    count = moved.pop(axis)
    flat = [rng.permutation(size)[:count] for _ in range(int(np.prod(moved)))]
    picked = np.moveaxis(np.array(flat).reshape(*moved, count), -1, axis)
    if negative:
        picked = np.where(rng.random(picked.shape) < 0.5, picked - size, picked)
    return picked.astype(np.int64)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("negative", [False, True])
def test_scatter_elements(axis, negative):
    rng = np.random.default_rng(axis + 1 + 5 * negative)
    data = rand(rng, 4, 5, 6)
    shape = [4, 5, 6]
    shape[axis] = 3
    indices = unique_along(rng, tuple(shape), axis, [4, 5, 6][axis], negative)
    updates = rand(rng, *shape)
    model = single_op("ScatterElements", {"d": data, "u": updates}, {"i": indices},
                      order=["d", "i", "u"], axis=axis)
    check_op(model, {"d": data, "u": updates}, eps=1.0, rtol=1e-9)


def test_scatter_elements_add_with_repeats():
    rng = np.random.default_rng(1)
    data, updates = rand(rng, 3, 4), rand(rng, 3, 5)
    indices = np.array([[0, 0, 3, -1, 1], [2, 2, 2, 1, -4], [3, 1, 1, 0, 0]])
    model = single_op("ScatterElements", {"d": data, "u": updates}, {"i": indices},
                      order=["d", "i", "u"], axis=1, reduction="add")
    check_op(model, {"d": data, "u": updates}, eps=1.0, rtol=1e-9)


@pytest.mark.parametrize("indices, updates_shape", [
    ([[1], [-1], [0]], (3, 3, 5)),
    ([[0, 2], [-1, -3], [2, 0], [1, 1]], (4, 5)),
    ([[[0, 1, 4]], [[-4, 0, -1]]], (2, 1)),
])
def test_scatter_nd(indices, updates_shape):
    rng = np.random.default_rng(len(updates_shape))
    data, updates = rand(rng, 4, 3, 5), rand(rng, *updates_shape)
    model = single_op("ScatterND", {"d": data, "u": updates},
                      {"i": np.array(indices, dtype=np.int64)}, order=["d", "i", "u"])
    check_op(model, {"d": data, "u": updates}, eps=1.0, rtol=1e-9)


def test_scatter_nd_add_with_repeats():
    rng = np.random.default_rng(2)
    data, updates = rand(rng, 4, 3), rand(rng, 3, 3)
    model = single_op("ScatterND", {"d": data, "u": updates},
                      {"i": np.array([[2], [-2], [0]])}, order=["d", "i", "u"], reduction="add")
    check_op(model, {"d": data, "u": updates}, eps=1.0, rtol=1e-9)


@pytest.mark.parametrize("op", ["ScatterElements", "ScatterND"])
def test_scatter_other_reductions_are_refused(op):
    data, updates = np.zeros((3, 2)), np.ones((1, 2))
    model = single_op(op, {"d": data, "u": updates}, {"i": np.zeros((1, 2 if op[7] == "E" else 1),
                                                                    dtype=np.int64)},
                      order=["d", "i", "u"], reduction="mul")
    with pytest.raises(FailedPrecondition, match="reduction 'mul'"):
        build_gradient_model(model, "y", ["d"])


@pytest.mark.parametrize("indices", [
    [-2],                                              # one slice, negative
    [[1], [-1], [0]],                                  # rows
    [[1], [1], [-3], [0]],                             # row 1 picked three times
    [[0, 2], [-1, -3], [3, 0], [0, -1]],               # [3, 0] twice, [0, 2] twice
    [[[0, 1, 4], [-4, 1, -1]], [[3, 2, 0], [0, 1, -1]]],  # elements, [0, 1, 4] three times
])
def test_gather_nd(indices):
    """Repeated picks must accumulate in data's gradient."""
    rng = np.random.default_rng(len(str(indices)))
    data = rand(rng, 4, 3, 5)
    model = single_op("GatherND", {"d": data}, {"i": np.array(indices, dtype=np.int64)})
    check_op(model, {"d": data}, eps=1.0, rtol=1e-9)
    ops = {n.op_type for n in build_gradient_model(model, "y", ["d"]).model.graph.node}
    assert "ScatterND" in ops


@pytest.mark.parametrize("batch_dims, indices", [
    (1, [[[2], [-1]], [[0], [0]], [[1], [-3]], [[2], [2]]]),        # data [4, 3, 5]
    (1, [[[2, 4]], [[0, -1]], [[-1, 0]], [[1, 1]]]),
    (2, [[[[4], [4]], [[0], [1]], [[-1], [2]]]] * 4),
])
def test_gather_nd_batch_dims(batch_dims, indices):
    rng = np.random.default_rng(batch_dims)
    data = rand(rng, 4, 3, 5)
    model = single_op("GatherND", {"d": data}, {"i": np.array(indices, dtype=np.int64)},
                      batch_dims=batch_dims)
    check_op(model, {"d": data}, eps=1.0, rtol=1e-9)


def test_gather_nd_float16_accumulates():
    """float16 has no ScatterND(add) kernel: the rule scatters in float and casts back."""
    rng = np.random.default_rng(4)
    data = rand(rng, 4, 3).astype(np.float16)
    indices = np.array([[1], [1], [-3], [0]], dtype=np.int64)
    model = single_op("GatherND", {"d": data}, {"i": indices})
    gm = build_gradient_model(model, "y", ["d"])
    seed_type = next(i for i in gm.model.graph.input if i.name == gm.seed_input)
    seed = rand(rng, 4, 3).astype(helper.tensor_dtype_to_np_dtype(
        seed_type.type.tensor_type.elem_type))
    got = session(gm.model).run([gm.gradient_outputs["d"]], {"d": data, gm.seed_input: seed})[0]
    want = np.zeros((4, 3))
    np.add.at(want, indices[:, 0], seed.astype(np.float64))
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=1e-2)


ROIS = np.array([[0.3, 1.2, 5.9, 6.1],     # inside the map
                 [-2.0, -1.5, 3.3, 2.2],   # past the top-left corner
                 [4.1, 3.7, 9.6, 8.8],     # past the bottom-right corner
                 [2.2, 2.4, 2.6, 3.1],     # smaller than one cell
                 [1.0, 0.5, 7.5, 4.0]])
BATCH = np.array([0, 1, 0, 1, 1], dtype=np.int64)


@pytest.mark.parametrize("mode", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("scale, out", [(1.0, (3, 2)), (0.75, (2, 4))])
def test_roi_align(mode, sampling_ratio, scale, out):
    rng = np.random.default_rng(sampling_ratio)
    x = rand(rng, 2, 3, 7, 8)
    rois = (ROIS / scale)
    model = single_op("RoiAlign", {"x": x, "rois": rois}, {"b": BATCH}, output_height=out[0],
                      output_width=out[1], sampling_ratio=sampling_ratio, spatial_scale=scale,
                      coordinate_transformation_mode=mode)
    check_op(model, {"x": x, "rois": rois}, wrt=["x"], eps=1.0, rtol=1e-9)


def test_roi_align_opset10_is_converted():
    rng = np.random.default_rng(3)
    x = rand(rng, 2, 2, 6, 5)
    model = single_op("RoiAlign", {"x": x}, {"r": ROIS[:3] * 0.7, "b": BATCH[:3]}, opset=10,
                      output_height=2, output_width=3, sampling_ratio=0)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-9)


def test_roi_align_max_mode_is_refused():
    x = np.zeros((1, 1, 4, 4))
    model = single_op("RoiAlign", {"x": x}, {"r": ROIS[:1], "b": BATCH[:1]}, mode="max")
    with pytest.raises(FailedPrecondition, match="mode 'max'"):
        build_gradient_model(model, "y", ["x"])
