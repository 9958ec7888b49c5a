"""OrtModelAccess on models whose input declares a fixed batch (torch.onnx.export's default): any
batch goes through, freed once verified or split into runs of the model's batch, with the values
of single runs; a batch it cannot split is refused naming the caller's batch."""

import numpy as np
import onnx
import pytest
from factory import CNNBuilder, small_cnn
from onnx import TensorProto, helper

from inspector import errors
from inspector.methods import get_method
from inspector.methods.base import Target
from inspector.runtime.access import OrtModelAccess

TOL = {"rtol": 1e-4, "atol": 1e-5}


def images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)
    return x * np.linspace(0.5, 3.0, n, dtype=np.float32)[:, None, None, None]  # rows with different top-1


def hard_reshape(batch: int, seed: int = 1) -> onnx.ModelProto:
    """conv -> relu -> Reshape to a hard-coded [batch, -1] -> gemm: dim 0 cannot be freed."""
    b = CNNBuilder((batch, 3, 16, 16), seed=seed, batch_dim=batch)
    x = b.relu(b.conv(b.input_name, 4, name="conv1"), name="relu1")
    shape = b.init("flat_shape", np.array([batch, -1], np.int64))
    flat = b.node("Reshape", [x, shape], name="flat")
    b.channels[flat] = 4 * 16 * 16
    return b.build(b.gemm(flat, 5, name="fc"), output_names=["logits"])


def time_major(batch_dim, seed: int = 2) -> onnx.ModelProto:
    """conv -> [N, 4, 16] -> Transpose: output 'seq' is [T=16, N, 4] (the batch on axis 1)."""
    b = CNNBuilder((1, 3, 8, 8), seed=seed, batch_dim=batch_dim)
    x = b.relu(b.conv(b.input_name, 4, stride=2, name="conv1"), name="relu1")
    shape = b.init("seq_shape", np.array([0, 4, -1], np.int64))
    seq = b.node("Reshape", [x, shape], name="rows")
    return b.build(b.node("Transpose", [seq], name="tm", perm=[2, 0, 1]), output_names=["seq"])


def stacked(runs: list[dict]) -> dict:
    return {k: np.concatenate([r[k] for r in runs]) for k in runs[0]}


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        assert got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], err_msg=k, **TOL)


def test_a_freeable_batch_one_model_runs_a_batch_of_five_freed_once():
    model = small_cnn(seed=3, batch_dim=1)
    access, single = OrtModelAccess(model), OrtModelAccess(model)
    x = images(5)
    seed = np.random.default_rng(1).standard_normal((5, 10)).astype(np.float32)
    ones = [x[i:i + 1] for i in range(5)]

    assert_same(access.forward(x, ["relu2_out"]), stacked([single.forward(o, ["relu2_out"]) for o in ones]))
    assert access.batch_freed is True and access.fixed_batch == 1
    assert_same(access.forward_exposed(x, ["relu3b_out"]),
                stacked([single.forward_exposed(o, ["relu3b_out"]) for o in ones]))
    assert_same(access.backward(x, "logits", seed, ["input", "relu4_out"], fetch=["relu1_out"]),
                stacked([single.backward(o, "logits", seed[i:i + 1], ["input", "relu4_out"], fetch=["relu1_out"])
                         for i, o in enumerate(ones)]))
    grads, fetched = access.backward_top1(x, "logits", ["relu4_out", "input"], fetch=["relu2_out"])
    singles = [single.backward_top1(o, "logits", ["relu4_out", "input"], fetch=["relu2_out"]) for o in ones]
    assert_same(grads, stacked([g for g, _ in singles]))
    assert_same(fetched, stacked([f for _, f in singles]))
    values = single.forward(x[:1], ["relu2_out"])["relu2_out"] * np.linspace(0, 2, 5, dtype=np.float32)[:, None, None, None]
    assert_same(access.forward_replacing(x, {"relu2_out": values}, ["logits"]),
                stacked([single.forward_replacing(o, {"relu2_out": values[i:i + 1]}, ["logits"])
                         for i, o in enumerate(ones)]))
    # the same values as the model exported with a symbolic batch
    assert_same(access.forward(x), OrtModelAccess(small_cnn(seed=3)).forward(x))

    assert access.free_checks == 1 and single.free_checks == 0 and single.batch_freed is None
    keys = [k[0][1:] for k in access._sessions._entries]
    assert keys.count(("freed", "expose", (), False)) == 1  # one freed plain session
    assert [k for k in keys if k[0] != "freed"] == [("expose", (), False)]  # the original: only the check


def test_a_hard_coded_reshape_stays_fixed_and_is_split():
    model = hard_reshape(1)
    access, single = OrtModelAccess(model), OrtModelAccess(model)
    x = images(5, 16)
    seed = np.random.default_rng(2).standard_normal((5, 5)).astype(np.float32)
    ones = [x[i:i + 1] for i in range(5)]
    assert_same(access.forward(x, ["relu1_out"]), stacked([single.forward(o, ["relu1_out"]) for o in ones]))
    assert access.batch_freed is False and access.free_checks == 1
    assert_same(access.forward_exposed(x, ["flat_out"]), stacked([single.forward_exposed(o, ["flat_out"]) for o in ones]))
    assert_same(access.backward(x, "logits", seed, ["input", "relu1_out"]),
                stacked([single.backward(o, "logits", seed[i:i + 1], ["input", "relu1_out"]) for i, o in enumerate(ones)]))
    grads, fetched = access.backward_top1(x, "logits", ["input"])
    singles = [single.backward_top1(o, "logits", ["input"]) for o in ones]
    assert_same(grads, stacked([g for g, _ in singles]))
    assert_same(fetched, stacked([f for _, f in singles]))
    assert not any("freed" in k[0] for k in access._sessions._entries)  # the failed freed session is gone
    access.forward(x)
    assert access.free_checks == 1


def test_a_fixed_batch_of_two_pads_the_last_run_of_five():
    model = hard_reshape(2, seed=4)
    access, pairs = OrtModelAccess(model), OrtModelAccess(model)
    x = images(5, 16, seed=3)
    seed = np.random.default_rng(3).standard_normal((5, 5)).astype(np.float32)

    def one(i, call):  # image i alone, run as a pair with itself
        return {k: v[:1] for k, v in call(x[[i, i]], i).items()}

    assert_same(access.forward(x, ["relu1_out"]), stacked([one(i, lambda p, i: pairs.forward(p, ["relu1_out"]))
                                                           for i in range(5)]))
    assert_same(access.backward(x, "logits", seed, ["input"]),
                stacked([one(i, lambda p, i: pairs.backward(p, "logits", seed[[i, i]], ["input"])) for i in range(5)]))
    grads, fetched = access.backward_top1(x, "logits", ["input"])
    assert_same(grads, stacked([one(i, lambda p, i: pairs.backward_top1(p, "logits", ["input"])[0]) for i in range(5)]))
    assert_same(fetched, stacked([one(i, lambda p, i: pairs.backward_top1(p, "logits", ["input"])[1]) for i in range(5)]))
    assert access.forward(x[:1])["logits"].shape == (1, 5)  # fewer than the batch: padded too
    np.testing.assert_allclose(access.forward(x[3:4])["logits"], access.forward(x)["logits"][3:4], **TOL)


def test_a_shape_output_of_a_split_variant_names_the_whole_batch():
    model = hard_reshape(1)
    access = OrtModelAccess(model, free_batch=False)

    def build(m):
        out = onnx.ModelProto()
        out.CopyFrom(m)
        out.graph.node.append(helper.make_node("Shape", ["relu1_out"], ["relu1_shape"]))
        out.graph.output.append(helper.make_tensor_value_info("relu1_shape", TensorProto.INT64, [4]))
        return out
    values = access.forward_variant(("shape",), build, images(3, 16), ["relu1_shape", "logits"])
    assert values["relu1_shape"].tolist() == [3, 4, 16, 16] and values["logits"].shape == (3, 5)


def test_a_time_major_output_is_right_freed_and_refused_when_split():
    x = images(3, 8)
    want = OrtModelAccess(time_major("N")).forward(x)["seq"]
    assert want.shape == (16, 3, 4)
    freed = OrtModelAccess(time_major(1))
    np.testing.assert_allclose(freed.forward(x)["seq"], want, **TOL)
    assert freed.batch_freed is True

    split = OrtModelAccess(time_major(1), free_batch=False)
    np.testing.assert_allclose(split.forward(x[1:2])["seq"], want[:, 1:2], **TOL)  # its own batch: fine
    with pytest.raises(errors.InvalidArgument) as e:
        split.forward(x)
    message = str(e.value)
    assert "batch of 1" in message and "sent 3 images" in message and "'seq'" in message
    assert "[1, 3, 8, 8]" not in message


def test_errors_name_the_batch_the_caller_sent():
    access = OrtModelAccess(small_cnn(batch_dim=1))
    with pytest.raises(errors.InvalidArgument, match=r"dimension 2 .*got \[4, 3, 30, 32\]"):
        access.forward(np.zeros((4, 3, 30, 32), np.float32))
    with pytest.raises(errors.InvalidArgument, match=r"4 dimensions .*got 3 \[4, 3, 32\]"):
        access.forward(np.zeros((4, 3, 32), np.float32))
    assert access.input_shapes == {"input": (1, 3, 32, 32)}


@pytest.mark.parametrize("name,params", [
    ("scorecam", {"batch_size": 8}), ("integrated_gradients", {"steps": 4}),
    ("occlusion", {"window": 8, "stride": 8}), ("rise", {"masks": 16, "batch_size": 8})])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("free", [True, False])
def test_methods_on_a_fixed_batch_model_equal_the_symbolic_model(name, params, n, free):
    x = images(n, seed=5)
    fixed = OrtModelAccess(small_cnn(seed=6, batch_dim=1), free_batch=free)
    symbolic = OrtModelAccess(small_cnn(seed=6))
    got = get_method(name).explain(fixed, x, Target(), None, **params)
    want = get_method(name).explain(symbolic, x, Target(), None, **params)
    assert got.heatmap.shape[0] == n
    np.testing.assert_allclose(got.heatmap, want.heatmap, rtol=1e-4, atol=1e-4)
    if want.attribution is not None:
        np.testing.assert_allclose(got.attribution, want.attribution, rtol=1e-4,
                                   atol=1e-4 * max(1.0, float(np.abs(want.attribution).max())))
    np.testing.assert_allclose(got.score, want.score, rtol=1e-4, atol=1e-5)
    assert fixed.batch_freed is (True if free else None)  # every method ran batches beyond 1


def _leaves(d, path=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, f"{path}/{k}")
    elif isinstance(d, list | tuple):
        for i, v in enumerate(d):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, d


@pytest.mark.parametrize("batch,free", [(1, True), (1, False), (5, False)])
def test_an_audit_of_a_fixed_batch_model_equals_the_symbolic_model(batch, free):
    from inspector.audit.audit import audit_model

    x = images(12, seed=7)
    want = dict(_leaves(audit_model(OrtModelAccess(small_cnn(seed=1)), [x[:7], x[7:]])))
    got = dict(_leaves(audit_model(OrtModelAccess(small_cnn(seed=1, batch_dim=batch), free_batch=free),
                                   [x[:7], x[7:]])))  # 7 = 5 + 2 padded to 5
    assert got.keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, float):
            assert got[k] == pytest.approx(v, rel=1e-3, abs=1e-4, nan_ok=True), k
        else:
            assert got[k] == v, k
