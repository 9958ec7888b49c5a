"""Models with several inputs (a siamese network): every input by name through the client; methods
attribute to the image input and hold the others fixed, equal to the same model with the other
input baked in as a constant."""

import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from inspector.methods import Target, get_method
from inspector.runtime.access import OrtModelAccess

RNG = np.random.default_rng(8)
W = RNG.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.4
FC = RNG.standard_normal((2, 6)).astype(np.float32)


def siamese(baked: np.ndarray | None = None) -> onnx.ModelProto:
    """Shared conv + relu on both images, |gap(a) - gap(b)| -> 2 logits. `baked`: input_2 as a constant."""
    nodes = []
    for tag, name in (("a", "input_1"), ("b", "input_2")):
        nodes += [helper.make_node("Conv", [name, "w"], [f"conv_{tag}"], name=f"conv_{tag}", pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"conv_{tag}"], [f"relu_{tag}"], name=f"relu_{tag}"),
                  helper.make_node("GlobalAveragePool", [f"relu_{tag}"], [f"gap_{tag}"], name=f"gap_{tag}"),
                  helper.make_node("Flatten", [f"gap_{tag}"], [f"flat_{tag}"], name=f"flat_{tag}")]
    nodes += [helper.make_node("Sub", ["flat_a", "flat_b"], ["diff"], name="diff"),
              helper.make_node("Abs", ["diff"], ["dist"], name="dist"),
              helper.make_node("Gemm", ["dist", "fc"], ["logits"], name="fc", transB=1)]
    image = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, 16, 16])  # noqa: E731
    inits = [numpy_helper.from_array(W, "w"), numpy_helper.from_array(FC, "fc")]
    inputs = [image("input_1")]
    if baked is None:
        inputs.append(image("input_2"))
    else:
        inits.append(numpy_helper.from_array(baked, "input_2"))
    graph = helper.make_graph(nodes, "siamese", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


A = RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)
B = RNG.standard_normal((1, 3, 16, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def loaded(server):
    from inspector_client import InspectorClient

    with InspectorClient(server.address, timeout=120) as c:
        info = c.load_model(siamese().SerializeToString(), name="siamese")
        assert [t.name for t in info.inputs] == ["input_1", "input_2"]
    return server


@pytest.fixture()
def baked():
    return OrtModelAccess(siamese(np.repeat(B, 2, axis=0)[:1]))


def test_infer_with_every_input_by_name_equals_onnxruntime(client, loaded):
    plain = ort.InferenceSession(siamese().SerializeToString(), providers=["CPUExecutionProvider"])
    b2 = np.repeat(B, 2, axis=0)
    got = client.infer("siamese", {"input_1": A, "input_2": b2})["logits"]
    np.testing.assert_allclose(got, plain.run(None, {"input_1": A, "input_2": b2})[0], rtol=1e-5, atol=1e-6)
    one_row = client.infer("siamese", {"input_1": A, "input_2": B})["logits"]  # held: shared by both images
    np.testing.assert_allclose(one_row, got, rtol=1e-5, atol=1e-6)


def test_methods_attribute_to_the_image_input_and_hold_the_other(client, loaded, baked):
    x = {"input_1": A, "input_2": B}
    grads = client.gradients("siamese", x, target=1)
    want = baked.backward(A, "logits", np.tile([[0, 1]], (2, 1)).astype(np.float32), ["input_1"])["input_1"]
    np.testing.assert_allclose(grads["input_1"], want, rtol=1e-5, atol=1e-7)
    for method, params in (("gradcam", {}), ("scorecam", {"batch_size": 4}), ("occlusion", {"window": 4, "stride": 4})):
        got = client.explain("siamese", x, method, target=0, layer="relu_a", **params)
        ref = get_method(method).explain(baked, A, Target(index=(0,)), ["relu_a"], **params)
        np.testing.assert_allclose(got.heatmap, ref.heatmap, rtol=1e-4, atol=1e-5, err_msg=method)
        assert np.ptp(got.heatmap) > 0


def test_missing_and_misnamed_inputs_are_named(client, loaded):
    for x, words in ((A, "input_2"), ({"input_1": A}, "input_2"), ({"input_2": B}, "input_1"),
                     ({"input_1": A, "input_2": B, "input_3": B}, "input_3")):
        with pytest.raises(grpc.RpcError) as err:
            client.explain("siamese", x, "gradcam")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert words in err.value.details()
    with pytest.raises(grpc.RpcError) as err:  # 2 rows held for a run of 4x4 occluded copies
        client.explain("siamese", {"input_1": A, "input_2": np.repeat(B, 2, axis=0)}, "occlusion",
                       window=8, stride=8, batch_size=3)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "one row" in err.value.details()


def test_in_process_takes_the_same_dict(loaded, baked):
    core = loaded.inspector
    exp = core.explain("siamese", {"input_1": A, "input_2": B}, "gradcam", target=0, layers=["relu_a"])
    ref = get_method("gradcam").explain(baked, A, Target(index=(0,)), ["relu_a"])
    np.testing.assert_allclose(exp.heatmap, ref.heatmap, rtol=1e-5, atol=1e-6)


def test_audit_holds_the_other_input_too(client, loaded):
    """Each batch by name; the audit of the image input equals one over the model with the other
    input baked in."""
    from inspector.audit.audit import AuditRun

    report = client.audit("siamese", [{"input_1": A, "input_2": B}, {"input_1": A[:1], "input_2": B}])
    model = siamese(B)
    run = AuditRun(model, name="ref")
    access = OrtModelAccess(model)
    for x in (A, A[:1]):
        run.update(access.forward(x, fetch=run.tensors), None, batch_size=len(x))
    ref = run.result()
    assert report["images"] == 3 == ref["images"]
    for name, layer in ref["layers"].items():
        for got, want in zip(report["layers"][name]["channels"], layer["channels"], strict=True):
            assert abs(got["mean"] - want["mean"]) <= 1e-5 * max(1, abs(want["mean"]))
            assert got["max"] == pytest.approx(want["max"], rel=1e-6)
