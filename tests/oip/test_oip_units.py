"""oip.py without a server: tensors on the wire (raw and typed, FP16/BF16/BYTES), the bfloat16
limit of onnxruntime's Python API said as FAILED_PRECONDITION, readiness and statistics."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from factory import small_cnn
from onnx import TensorProto, helper

from inspector import errors
from inspector.config import InspectorConfig
from inspector.core import Inspector
from inspector.kserve.oip import Oip, datatype_of, from_raw, from_values, to_raw


def test_raw_round_trips():
    for arr, dt in [(np.arange(6, dtype=np.float16).reshape(2, 3) / 7, "FP16"),
                    (np.array([[1.5, -2.25, 3e5]], ml_dtypes.bfloat16), "BF16"),
                    (np.array([True, False]), "BOOL"), (np.array([-3, 7], np.int8), "INT8"),
                    (np.array([2**40], np.uint64), "UINT64")]:
        assert datatype_of(arr.dtype.name) == dt
        t = from_raw("x", dt, arr.shape, to_raw(arr), "inputs.x")
        assert t.array.dtype == arr.dtype and t.array.tobytes() == arr.tobytes()
    words = np.array([b"ab", b"", "\u00e9".encode()], dtype=object)
    assert list(from_raw("s", "BYTES", [3], to_raw(words), "inputs.s").array) == list(words)


def test_typed_values():
    assert from_values("x", "FP32", [2, 2], [[1, 2], [3, 4]], "f").array.tolist() == [[1, 2], [3, 4]]
    assert from_values("x", "BF16", [2], [1.5, 2.0], "f").array.dtype == ml_dtypes.bfloat16
    with pytest.raises(errors.InvalidArgument, match="input 'x': shape \\[3\\] needs 3 values, got 2"):
        from_values("x", "INT32", [3], [1, 2], "f")
    with pytest.raises(errors.InvalidArgument, match="input 'x': datatype 'FLOAT'"):
        from_raw("x", "FLOAT", [1], b"\0" * 4, "f")
    with pytest.raises(errors.InvalidArgument, match="a BYTES element runs past"):
        from_raw("x", "BYTES", [1], b"\x09\0\0\0ab", "f")


def _bf16_model():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"),
             helper.make_node("Cast", ["r"], ["y"], name="down", to=TensorProto.BFLOAT16)]
    g = helper.make_graph(nodes, "bf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, ["N", 4])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


@pytest.fixture()
def oip(tmp_path):
    return Oip(Inspector(InspectorConfig(store_dir=tmp_path / "store", intra_op_threads=1)))


def test_bfloat16_outputs_refused_as_a_precondition(oip):
    oip.core.load_model(_bf16_model().SerializeToString(), name="bf")
    x = [from_values("x", "FP32", [1, 4], [1, -2, 3, -4], "inputs.x")]
    with pytest.raises(errors.FailedPrecondition, match="output 'y' is bfloat16"):
        oip.infer(oip.start("bf"), x, None)
    out = oip.infer(oip.start("bf"), x, ["act"])  # the float tensor before the Cast
    assert out.outputs[0][1] == "FP32" and out.outputs[0][2].tolist() == [[1, 0, 3, 0]]


def test_readiness_and_statistics_are_shared_per_core(oip):
    assert Oip.of(oip.core) is Oip.of(oip.core)
    oip.core.load_model(small_cnn(seed=2).SerializeToString(), name="c")
    assert oip.model_ready("c") and oip.model_ready("c", "1") and not oip.model_ready("c", "2")
    oip.unload("c")
    assert not oip.model_ready("c") and oip.index()[0]["state"] == "UNAVAILABLE"
    oip.load("c")
    assert oip.model_ready("c")
    call = oip.start("c")
    x = np.zeros((3, 3, 32, 32), np.float32)
    oip.infer(call, [from_raw("input", "FP32", x.shape, x.tobytes(), "inputs.input")], None)
    call.done(True)
    ((name, s),) = oip.statistics("c")
    assert name == "c" and s.success.count == 1 and s.inference_count == 3 and s.execution_count == 1
    assert s.compute_infer.ns > 0 and s.batches[3][1].count == 1
    oip.unload("c", {"delete": True})
    with pytest.raises(errors.NotFound):
        oip.statistics("c")
