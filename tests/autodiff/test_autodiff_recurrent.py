"""LSTM, GRU and RNN rules against central differences (float32: onnxruntime's recurrent
kernels have no double version): every direction, bias or not, initial states or not, each
output (Y, Y_h, Y_c) alone and together, batch and sequence length above one, RNN with Tanh,
Relu and Sigmoid. Layout 1 is refused (onnxruntime cannot run it)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from autodiff_reference import OPSET, check_op, typed_outputs
from onnx import TensorProto, helper, numpy_helper

from inspector.errors import FailedPrecondition
from inspector.graph.autodiff import build_gradient_model

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
STEPS, BATCH, FEATURES, HIDDEN = 3, 2, 3, 4
# float32 central differences (eps 1e-2) agree to ~5e-5 of the largest entry here.
RTOL = 5e-4


def recurrent_case(op: str, direction: str = "forward", bias: bool = True,
                   initial: bool = True, outputs: tuple[str, ...] = ("Y",),
                   seed: int = 0, lens: np.ndarray | None = None, symbolic: bool = False,
                   **attrs) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One LSTM/GRU/RNN node; X and the initial states are graph inputs, weights initializers.

    `outputs` names the node outputs used (others left empty); with more than one, the graph
    output 'y' sums them (Y summed over time) so every output's gradient flows back at once.
    `symbolic` declares the time and batch sizes as names (nothing static for the rule).
    """
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    gates = GATES[op]

    def arr(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x = arr(STEPS, BATCH, FEATURES)
    state = (dirs, BATCH, HIDDEN)
    feeds = {"x": x}
    consts = {"w": arr(dirs, gates * HIDDEN, FEATURES, scale=0.6),
              "r": arr(dirs, gates * HIDDEN, HIDDEN, scale=0.6)}
    if bias:
        consts["b"] = arr(dirs, 2 * gates * HIDDEN, scale=0.5)
    if lens is not None:
        consts["lens"] = lens.astype(np.int32)
    if initial:
        feeds["h0"] = arr(*state, scale=0.8)
        if op == "LSTM":
            feeds["c0"] = arr(*state, scale=0.8)
    names = ["x", "w", "r", "b" if bias else "", "lens" if lens is not None else "",
             "h0" if initial else ""]
    if op == "LSTM":
        names.append("c0" if initial else "")
    while not names[-1]:
        names.pop()
    all_outs = ["Y", "Y_h", "Y_c"][: 3 if op == "LSTM" else 2]
    node_outs = [o if o in outputs else "" for o in all_outs]
    while not node_outs[-1]:
        node_outs.pop()
    if len(outputs) == 1:
        node_outs = ["y" if o == outputs[0] else o for o in node_outs]
    nodes = [helper.make_node(op, names, node_outs, name="the_rnn", hidden_size=HIDDEN,
                              direction=direction, **attrs)]
    if len(outputs) > 1:
        parts = []
        for o in outputs:
            if o == "Y":
                nodes.append(helper.make_node("ReduceSum", ["Y", "time_axis"], ["Y_sum"],
                                              keepdims=0))
                parts.append("Y_sum")
            else:
                parts.append(o)
        consts["time_axis"] = np.array([0], dtype=np.int64)
        nodes.append(helper.make_node("Sum", parts, ["y"]))
    declared = {"x": ["T", "B", FEATURES], "h0": [dirs, "B", HIDDEN], "c0": [dirs, "B", HIDDEN]}
    graph = helper.make_graph(
        nodes, "rnn", [helper.make_tensor_value_info(k, TensorProto.FLOAT,
                                                     declared[k] if symbolic else v.shape)
                       for k, v in feeds.items()],
        [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return typed_outputs(model), feeds


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("bias, initial", [(True, True), (False, False), (True, False)])
def test_directions_bias_initial_states(op, direction, bias, initial):
    model, feeds = recurrent_case(op, direction, bias, initial, seed=len(direction))
    check_op(model, feeds, rtol=RTOL)


@pytest.mark.parametrize("op, outputs", [
    ("LSTM", ("Y_h",)), ("LSTM", ("Y_c",)), ("LSTM", ("Y", "Y_h", "Y_c")), ("LSTM", ("Y_h", "Y_c")),
    ("GRU", ("Y_h",)), ("GRU", ("Y", "Y_h")),
])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_final_state_outputs(op, outputs, direction):
    model, feeds = recurrent_case(op, direction, outputs=outputs, seed=3)
    check_op(model, feeds, rtol=RTOL)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("initial", [True, False])
def test_gru_linear_before_reset(direction, initial):
    model, feeds = recurrent_case("GRU", direction, initial=initial, linear_before_reset=1,
                                  outputs=("Y", "Y_h"), seed=5)
    check_op(model, feeds, rtol=RTOL)


@pytest.mark.parametrize("op, wrt", [("LSTM", ["x"]), ("LSTM", ["h0"]), ("LSTM", ["c0"]),
                                     ("GRU", ["x"]), ("GRU", ["h0"])])
def test_one_input_at_a_time(op, wrt):
    model, feeds = recurrent_case(op, "bidirectional", outputs=("Y", "Y_h"), seed=9)
    check_op(model, feeds, wrt=wrt, rtol=RTOL)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_symbolic_time_and_batch(op):
    model, feeds = recurrent_case(op, "bidirectional", outputs=("Y", "Y_h"), symbolic=True,
                                  seed=7)
    check_op(model, feeds, rtol=RTOL)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("bias, initial", [(True, True), (False, False), (True, False),
                                           (False, True)])
def test_rnn_directions_bias_initial_state(direction, bias, initial):
    """Y and Y_h together, time and batch symbolic: gradients of X and initial_h."""
    model, feeds = recurrent_case("RNN", direction, bias, initial, outputs=("Y", "Y_h"),
                                  symbolic=True, seed=len(direction) + 2 * bias + initial)
    check_op(model, feeds, rtol=RTOL)


@pytest.mark.parametrize("activations", [["Relu"], ["Sigmoid"], ["Relu", "Tanh"],
                                         ["Sigmoid", "Relu"]])
def test_rnn_other_activations(activations):
    direction = "bidirectional" if len(activations) == 2 else "reverse"
    model, feeds = recurrent_case("RNN", direction, outputs=("Y", "Y_h"), seed=4,
                                  activations=activations)
    check_op(model, feeds, rtol=RTOL)


@pytest.mark.parametrize("outputs, wrt", [(("Y_h",), ["x"]), (("Y_h",), ["h0"]),
                                          (("Y",), ["h0"])])
def test_rnn_one_output_one_input(outputs, wrt):
    model, feeds = recurrent_case("RNN", "bidirectional", outputs=outputs, seed=11)
    check_op(model, feeds, wrt=wrt, rtol=RTOL)


def test_stacked_bidirectional_lstm_like_a_pytorch_export():
    """x -> LSTM -> Transpose/Reshape [T, B, 2H] -> LSTM -> y: the second LSTM's X gradient
    is an intermediate one."""
    rng = np.random.default_rng(8)

    def arr(*shape: int, scale: float = 0.6) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x = arr(STEPS, BATCH, FEATURES, scale=1.0)
    consts = {"w1": arr(2, 4 * HIDDEN, FEATURES), "r1": arr(2, 4 * HIDDEN, HIDDEN),
              "b1": arr(2, 8 * HIDDEN), "w2": arr(2, 4 * HIDDEN, 2 * HIDDEN),
              "r2": arr(2, 4 * HIDDEN, HIDDEN), "shape": np.array([0, 0, -1], dtype=np.int64)}
    nodes = [
        helper.make_node("LSTM", ["x", "w1", "r1", "b1"], ["y1"], hidden_size=HIDDEN,
                         direction="bidirectional"),
        helper.make_node("Transpose", ["y1"], ["t1"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["t1", "shape"], ["x2"]),
        helper.make_node("LSTM", ["x2", "w2", "r2"], ["", "y"], hidden_size=HIDDEN,
                         direction="bidirectional"),
    ]
    graph = helper.make_graph(
        nodes, "stacked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    check_op(typed_outputs(model), {"x": x}, rtol=RTOL)


@pytest.mark.parametrize("op", ["LSTM", "RNN"])
def test_full_length_sequence_lens_is_accepted(op):
    model, feeds = recurrent_case(op, "bidirectional", lens=np.full(BATCH, STEPS), seed=6)
    check_op(model, feeds, rtol=RTOL)


@pytest.mark.parametrize("op, attrs, lens, message", [
    ("LSTM", {"clip": 3.0}, None, "clip"),
    ("GRU", {"activations": ["Sigmoid", "Relu"]}, None, "activations"),
    ("LSTM", {"input_forget": 1}, None, "input_forget"),
    ("GRU", {}, np.array([STEPS, STEPS - 1]), "sequence_lens"),
    ("LSTM", {"layout": 1}, None, "layout=1"),
    ("RNN", {"clip": 3.0}, None, "clip"),
    ("RNN", {"activations": ["LeakyRelu"], "activation_alpha": [0.1]}, None, "activations"),
    ("RNN", {}, np.array([STEPS, STEPS - 1]), "sequence_lens"),
    ("RNN", {"layout": 1}, None, "layout=1"),
])
def test_unsupported_attributes_are_refused(op, attrs, lens, message):
    model, _ = recurrent_case(op, lens=lens, **attrs)
    with pytest.raises(FailedPrecondition, match=message):
        build_gradient_model(model, "y", ["x"])


def test_peepholes_are_refused():
    model, _ = recurrent_case("LSTM")
    node = model.graph.node[0]
    node.input.append("p")  # after x, w, r, b, "", h0, c0
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 3 * HIDDEN), np.float32),
                                                           "p"))
    with pytest.raises(FailedPrecondition, match="peepholes"):
        build_gradient_model(model, "y", ["x"])
