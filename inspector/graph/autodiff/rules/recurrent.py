"""LSTM, GRU and RNN: backpropagation through time as an onnx Scan over the time steps.

The forward node's Y output holds every hidden state, so the gates of all steps are
recomputed at once (two MatMuls); only the LSTM cell state needs a forward Scan. The backward
Scan then carries d(hidden) (and d(cell)) from the last processed step to the first and emits
each step's gate-preactivation gradient; X's gradient is one MatMul of those with W. Any
sequence length or batch (static or not), forward/reverse/bidirectional, optional bias and
initial states. Gradients flow to X and the initial states; W, R and B get
none. Refused: non-default activations, clip, input_forget, peepholes, layout 1 (batch first:
onnxruntime cannot run it either), and sequence_lens unless every sequence is known to be full
length. RNN (h = f(x W^T + h_prev R^T + Wb + Rb)) needs no recomputation at all: f' comes from
Y itself, for f in Tanh, Relu or Sigmoid (each direction its own); other activations are refused.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..emitter import Emitter
from ..registry import attribute, rule

LSTM_INPUTS = {"X": 0, "W": 1, "R": 2, "B": 3, "sequence_lens": 4, "initial_h": 5,
               "initial_c": 6, "P": 7}
GRU_INPUTS = {"X": 0, "W": 1, "R": 2, "B": 3, "sequence_lens": 4, "initial_h": 5}
RNN_INPUTS = GRU_INPUTS
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"],
                       "RNN": ["Tanh"]}
# RNN activations whose slope is a function of their output (so Y alone gives f').
RNN_ACTIVATIONS = ("Tanh", "Relu", "Sigmoid")


class Body:
    """The nodes of one Scan body; names come from the emitter, so they are unique."""

    def __init__(self, em: Emitter, elem: int) -> None:
        self.em, self.elem = em, elem
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []

    def input(self, base: str) -> str:
        name = self.em.fresh(base)
        self.inputs.append(helper.make_tensor_value_info(name, self.elem, None))
        return name

    def do(self, op_type: str, *inputs: str, **attrs) -> str:
        out = self.em.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out],
                                           name=self.em.fresh(f"grad_{op_type}"), **attrs))
        return out

    def graph(self, outputs: list[str]) -> onnx.GraphProto:
        names = [self.do("Identity", o) for o in outputs]
        infos = [helper.make_tensor_value_info(n, self.elem, None) for n in names]
        return helper.make_graph(self.nodes, self.em.fresh("scan_body"), self.inputs, infos)


def scan(em: Emitter, body: onnx.GraphProto, states: list[str], inputs: list[str],
         n_outputs: int, backwards: bool) -> list[str]:
    """Scan over axis 0 of `inputs` (last index first when `backwards`), stacking each step's
    outputs in input order; returns final states, then stacked outputs."""
    way = int(backwards)
    outs = em.op("Scan", [*states, *inputs], n_out=len(states) + n_outputs, body=body,
                 num_scan_inputs=len(inputs), scan_input_directions=[way] * len(inputs),
                 scan_output_directions=[way] * n_outputs)
    return [outs] if isinstance(outs, str) else outs


def _zeros(em: Emitter, like: str, x: str) -> str:
    """Zeros shaped like `like`, of the element type of forward tensor x."""
    zero = helper.make_tensor("zero", em.dtype(x), [1], [0])
    return em.do("ConstantOfShape", em.shape(like), value=zero)


def _part(em: Emitter, t: str, k: int, hidden: int, axis: int = -1) -> str:
    """Gate block k ([k*hidden, (k+1)*hidden) along axis) of a stacked-gate tensor."""
    return em.do("Slice", t, em.const([k * hidden]), em.const([(k + 1) * hidden]),
                 em.const([axis]))


def _pick(em: Emitter, t: str | None, d: int, axis: int) -> str | None:
    return None if t is None else em.do("Gather", t, em.const(d), axis=axis)


def _previous(em: Emitter, seq: str, first: str, reverse: bool) -> str:
    """[T, B, H] state before each step: `first` then seq shifted by one processed step."""
    head = em.do("Unsqueeze", first, em.const([0]))
    if reverse:
        return em.do("Concat", em.do("Slice", seq, em.const([1]), em.const([2**62]),
                                     em.const([0])), head, axis=0)
    return em.do("Concat", head, em.do("Slice", seq, em.const([0]), em.const([-1]),
                                       em.const([0])), axis=0)


def _one_minus_square(em: Emitter, t: str, x: str) -> str:
    return em.do("Sub", em.scalar(1.0, x), em.do("Mul", t, t))


def _sigmoid_slope(em: Emitter, s: str, x: str) -> str:
    return em.do("Mul", s, em.do("Sub", em.scalar(1.0, x), s))


def _check(node: onnx.NodeProto, em: Emitter, positions: dict[str, int]) -> tuple[int, int]:
    """(hidden size, number of directions), or NotImplementedError for what is not covered."""
    op = node.op_type
    directions = 2 if attribute(node, "direction", "forward") == "bidirectional" else 1
    given = attribute(node, "activations")
    if given is not None and op != "RNN":  # RNN: see _rnn_activations
        names = [a.decode() if isinstance(a, bytes) else a for a in given]
        if [n.lower() for n in names] != [n.lower() for n in DEFAULT_ACTIVATIONS[op] * directions]:
            raise NotImplementedError(f"{op} activations {names} (only the default "
                                      f"{DEFAULT_ACTIVATIONS[op]} have a gradient rule)")
    if attribute(node, "clip") is not None:
        raise NotImplementedError(f"{op} with clip (the clipped cell has no gradient rule)")
    if attribute(node, "input_forget", 0):
        raise NotImplementedError(f"{op} with input_forget=1")
    if attribute(node, "layout", 0) != 0:
        raise NotImplementedError(f"{op} with layout={attribute(node, 'layout')} (batch first; "
                                  "onnxruntime runs layout 0 only, and so does this rule)")
    if "P" in positions and len(node.input) > positions["P"] and node.input[positions["P"]]:
        raise NotImplementedError("LSTM with peepholes (input P)")
    lens = node.input[4] if len(node.input) > 4 else ""
    if lens:
        value = em.constant(lens)
        dims = em.dims(node.input[0])
        steps = None if dims is None else dims[0]
        if value is None or not isinstance(steps, int) or not np.all(value == steps):
            raise NotImplementedError(
                f"{op} with sequence_lens: only constant sequence_lens equal to the full "
                "(static) sequence length have a gradient rule; drop sequence_lens or pad")
    hidden = attribute(node, "hidden_size")
    if hidden is None:
        dims = em.dims(node.input[2])
        hidden = dims[-1] if dims is not None else None
        if not isinstance(hidden, int):
            raise NotImplementedError(f"{op} without hidden_size and no static R shape")
    return hidden, directions


def _rnn_activations(node: onnx.NodeProto, directions: int) -> list[str]:
    """Each direction's RNN activation (canonical spelling), or NotImplementedError."""
    given = attribute(node, "activations")
    names = DEFAULT_ACTIVATIONS["RNN"] * directions if given is None else [
        a.decode() if isinstance(a, bytes) else a for a in given]
    known = {a.lower(): a for a in RNN_ACTIVATIONS}
    if len(names) != directions or any(n.lower() not in known for n in names):
        raise NotImplementedError(
            f"RNN activations {names} (only {', '.join(RNN_ACTIVATIONS)}, one per direction, "
            "have a gradient rule)")
    return [known[n.lower()] for n in names]


class Recurrence:
    """One LSTM/GRU/RNN node's tensors, per direction, as the three rules use them."""

    def __init__(self, node: onnx.NodeProto, grads: list[str | None], em: Emitter,
                 positions: dict[str, int]) -> None:
        self.node, self.em = node, em
        self.hidden, self.directions = _check(node, em, positions)
        self.reverse_only = attribute(node, "direction", "forward") == "reverse"

        def given(name: str) -> str | None:
            at = positions[name]
            return node.input[at] if len(node.input) > at and node.input[at] else None

        if not node.output or not node.output[0]:  # Y (every hidden state) is needed
            if not node.output:
                node.output.append("")
            node.output[0] = em.fresh(f"{node.name or node.op_type.lower()}_Y")
        # X: [T, B, I]; Y and its gradient: [T, D, B, H]; the rest per direction first.
        self.x, self.y, self.gy = node.input[0], node.output[0], grads[0]
        self.w, self.r, self.b = node.input[1], node.input[2], given("B")
        self.initial = {k: given(k) for k in ("initial_h", "initial_c") if k in positions}
        self.last = grads[1:]  # of Y_h (and Y_c): [D, B, H]

    def reverse(self, d: int) -> bool:
        return d == 1 or self.reverse_only

    def direction(self, d: int) -> dict[str, str | None]:
        """Per-direction [T, B, H] hidden states, incoming gradients and weights."""
        em, x = self.em, self.x
        y = _pick(em, self.y, d, 1)
        first_state = em.do("Gather", y, em.const(0), axis=0)
        out = {"y": y, "w": _pick(em, self.w, d, 0), "r": _pick(em, self.r, d, 0),
               "b": _pick(em, self.b, d, 0)}
        out["gy"] = _pick(em, self.gy, d, 1) or _zeros(em, y, x)
        for k, t in self.initial.items():
            out[k] = _pick(em, t, d, 0) or _zeros(em, first_state, x)
        # Gradients of the last hidden (and cell) state start the backward recurrence.
        for k, at in (("gh", 0), ("gc", 1))[:len(self.initial)]:
            g = self.last[at] if at < len(self.last) else None
            out[k] = _pick(em, g, d, 0) or _zeros(em, first_state, x)
        out["h_prev"] = _previous(em, y, out["initial_h"], self.reverse(d))
        return out

    def input_gradient(self, d_pre: str, w: str) -> str | None:
        """One direction's share of X's gradient from its gate-preactivation gradients."""
        return self.em.do("MatMul", d_pre, w) if self.em.needs(self.x) else None

    def results(self, dxs: list[str | None], starts: dict[str, list[str]]) -> list[str | None]:
        em = self.em
        grads: list[str | None] = [None] * len(self.node.input)
        if dxs[0] is not None:
            grads[0] = dxs[0] if len(dxs) == 1 else em.do("Sum", *dxs)
        for k, at in (("initial_h", 5), ("initial_c", 6)):
            if k in starts and len(self.node.input) > at and em.needs(self.node.input[at]):
                per_dir = [em.do("Unsqueeze", s, em.const([0])) for s in starts[k]]
                stacked = per_dir[0] if len(per_dir) == 1 else em.do("Concat", *per_dir, axis=0)
                grads[at] = stacked
        return grads


def _bias(em: Emitter, b: str | None, gates: int, hidden: int) -> tuple[str | None, str | None]:
    """(Wb, Rb) halves of one direction's bias, or (None, None)."""
    if b is None:
        return None, None
    size = gates * hidden
    return (em.do("Slice", b, em.const([0]), em.const([size]), em.const([0])),
            em.do("Slice", b, em.const([size]), em.const([2 * size]), em.const([0])))


def _affine(em: Emitter, t: str, m: str, bias: str | None) -> str:
    """t @ m^T (+ bias)."""
    out = em.do("MatMul", t, em.do("Transpose", m, perm=[1, 0]))
    return out if bias is None else em.do("Add", out, bias)


@rule("LSTM", inputs=(0, 5, 6))
def lstm(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Gates i, o, f (sigmoid) and cand (tanh) of x W^T + h_prev R^T + Wb + Rb, stacked in
    that order; c = f * c_prev + i * cand, h = o * tanh(c)."""
    rec = Recurrence(node, grads, em, LSTM_INPUTS)
    x, hidden, elem = rec.x, rec.hidden, em.dtype(rec.x)
    dxs, starts = [], {"initial_h": [], "initial_c": []}
    for d in range(rec.directions):
        v, back = rec.direction(d), rec.reverse(d)
        wb, rb = _bias(em, v["b"], 4, hidden)
        pre = em.do("Add", _affine(em, x, v["w"], wb), _affine(em, v["h_prev"], v["r"], rb))
        i, o, f = (em.do("Sigmoid", _part(em, pre, k, hidden)) for k in range(3))
        cand = em.do("Tanh", _part(em, pre, 3, hidden))
        # Forward Scan for the cell states: c = f * c_prev + i * cand, in processing order.
        body = Body(em, elem)
        c_in, f_in, ig_in = body.input("c"), body.input("f"), body.input("ig")
        c_new = body.do("Add", body.do("Mul", f_in, c_in), ig_in)
        cells = scan(em, body.graph([c_new, c_new]), [v["initial_c"]],
                     [f, em.do("Mul", i, cand)], 1, back)[1]
        c_prev = _previous(em, cells, v["initial_c"], back)
        tanh_c = em.do("Tanh", cells)
        to_cell = em.do("Mul", o, _one_minus_square(em, tanh_c, x))      # dC/dh
        slopes = em.do("Concat",
                       em.do("Mul", cand, _sigmoid_slope(em, i, x)),      # i gate
                       em.do("Mul", tanh_c, _sigmoid_slope(em, o, x)),    # o gate (times dh)
                       em.do("Mul", c_prev, _sigmoid_slope(em, f, x)),    # f gate
                       em.do("Mul", i, _one_minus_square(em, cand, x)),   # cell candidate
                       axis=-1)
        # Backward Scan: carry (dh, dc) against processing order, emit d(preactivations).
        body = Body(em, elem)
        dh, dc = body.input("dh"), body.input("dc")
        gy, to_c, slope, forget = (body.input(n) for n in ("gy", "to_cell", "slopes", "f"))
        dh_all = body.do("Add", dh, gy)
        dcell = body.do("Add", dc, body.do("Mul", dh_all, to_c))
        d_pre = body.do("Mul", body.do("Concat", dcell, dh_all, dcell, dcell, axis=-1), slope)
        dh_prev = body.do("MatMul", d_pre, v["r"])
        dc_prev = body.do("Mul", dcell, forget)
        dh0, dc0, d_pres = scan(em, body.graph([dh_prev, dc_prev, d_pre]), [v["gh"], v["gc"]],
                                [v["gy"], to_cell, slopes, f], 1, not back)
        dxs.append(rec.input_gradient(d_pres, v["w"]))
        starts["initial_h"].append(dh0)
        starts["initial_c"].append(dc0)
    return rec.results(dxs, starts)


@rule("GRU", inputs=(0, 5))
def gru(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Gates z, r (sigmoid) and cand (tanh), stacked in that order; h = (1 - z) * cand +
    z * h_prev. cand's recurrent term is (r * h_prev) Rh^T + Rbh, or r * (h_prev Rh^T + Rbh)
    with linear_before_reset."""
    rec = Recurrence(node, grads, em, GRU_INPUTS)
    x, hidden, elem = rec.x, rec.hidden, em.dtype(rec.x)
    before_reset = attribute(node, "linear_before_reset", 0)
    dxs, starts = [], {"initial_h": []}
    for d in range(rec.directions):
        v, back = rec.direction(d), rec.reverse(d)
        wb, rb = _bias(em, v["b"], 3, hidden)
        h_prev = v["h_prev"]
        from_x = _affine(em, x, v["w"], wb)
        from_h = _affine(em, h_prev, v["r"], rb)
        z, r = (em.do("Sigmoid", em.do("Add", _part(em, from_x, k, hidden),
                                       _part(em, from_h, k, hidden))) for k in (0, 1))
        r_h = _part(em, v["r"], 2, hidden, axis=0)                       # [H, H]
        if before_reset:
            linear = _part(em, from_h, 2, hidden)                          # h_prev Rh^T + Rbh
        else:
            rbh = None if rb is None else _part(em, rb, 2, hidden, axis=0)
            linear = _affine(em, em.do("Mul", r, h_prev), r_h, rbh)
        cand = em.do("Tanh", em.do("Add", _part(em, from_x, 2, hidden),
                                   em.do("Mul", r, linear) if before_reset else linear))
        z_slope = em.do("Mul", em.do("Sub", h_prev, cand), _sigmoid_slope(em, z, x))
        cand_slope = em.do("Mul", em.do("Sub", em.scalar(1.0, x), z),
                           _one_minus_square(em, cand, x))
        r_slope = em.do("Mul", linear if before_reset else h_prev, _sigmoid_slope(em, r, x))
        body = Body(em, elem)
        dh = body.input("dh")
        gy, zz, rr, zs, cs, rs = (body.input(n) for n in ("gy", "z", "r", "z_slope",
                                                           "cand_slope", "r_slope"))
        dh_all = body.do("Add", dh, gy)
        dz, dcand = body.do("Mul", dh_all, zs), body.do("Mul", dh_all, cs)
        carry = body.do("Mul", dh_all, zz)
        if before_reset:
            dr = body.do("Mul", dcand, rs)
            d_lin = body.do("Mul", dcand, rr)
            back_h = body.do("MatMul", body.do("Concat", dz, dr, d_lin, axis=-1), v["r"])
            dh_prev = body.do("Add", carry, back_h)
        else:
            d_rh = body.do("MatMul", dcand, r_h)                               # d(r * h_prev)
            dr = body.do("Mul", d_rh, rs)
            r_zr = _part(em, v["r"], 0, 2 * hidden, axis=0)                  # [2H, H]
            back_h = body.do("MatMul", body.do("Concat", dz, dr, axis=-1), r_zr)
            dh_prev = body.do("Add", body.do("Add", carry, back_h), body.do("Mul", d_rh, rr))
        d_pre = body.do("Concat", dz, dr, dcand, axis=-1)
        dh0, d_pres = scan(em, body.graph([dh_prev, d_pre]), [v["gh"]],
                           [v["gy"], z, r, z_slope, cand_slope, r_slope], 1, not back)
        dxs.append(rec.input_gradient(d_pres, v["w"]))
        starts["initial_h"].append(dh0)
    return rec.results(dxs, starts)


def _slope(em: Emitter, activation: str, y: str, x: str) -> str:
    """f'(preactivation) from the output y = f(preactivation)."""
    if activation == "Tanh":
        return _one_minus_square(em, y, x)
    if activation == "Sigmoid":
        return _sigmoid_slope(em, y, x)
    positive = em.do("Greater", y, em.scalar(0.0, x))                     # Relu
    return em.do("Where", positive, em.scalar(1.0, x), em.scalar(0.0, x))


@rule("RNN", inputs=(0, 5))
def rnn(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """h = f(x W^T + h_prev R^T + Wb + Rb): the backward Scan carries dh and emits
    d(pre) = (dh + gy) * f'(pre), with f' read off Y; dh_prev = d(pre) R."""
    rec = Recurrence(node, grads, em, RNN_INPUTS)
    activations = _rnn_activations(node, rec.directions)
    x, elem = rec.x, em.dtype(rec.x)
    dxs, starts = [], {"initial_h": []}
    for d in range(rec.directions):
        v, back = rec.direction(d), rec.reverse(d)
        slope = _slope(em, activations[d], v["y"], x)
        body = Body(em, elem)
        dh, gy, sl = body.input("dh"), body.input("gy"), body.input("slope")
        d_pre = body.do("Mul", body.do("Add", dh, gy), sl)
        dh_prev = body.do("MatMul", d_pre, v["r"])
        dh0, d_pres = scan(em, body.graph([dh_prev, d_pre]), [v["gh"]], [v["gy"], slope], 1,
                           not back)
        dxs.append(rec.input_gradient(d_pres, v["w"]))
        starts["initial_h"].append(dh0)
    return rec.results(dxs, starts)
