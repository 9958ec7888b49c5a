"""Reverse-mode autodiff over ONNX graphs: ModelProto in, forward+backward ModelProto out.

onnxruntime runs inference graphs only, so gradients come from a backward graph generated
here, one VJP rule per op type (rules/). The seed is a graph input, so one model serves
every target; only the part between the `wrt` tensors and `start` is differentiated.

Dtypes: the backward runs in the forward tensors' own types (float16 and bfloat16 models get
float16/bfloat16 gradients). The seed input and gradient outputs have those types too, unless
`float32_edges` (what the runtime asks for): then the seed input is float32, Cast to the type of
`start` in the graph, every gradient output is Cast to float32, and bfloat16 fetched values
too (numpy has no bfloat16). Integer model inputs (images fed as uint8/int8) are differentiated
through a straight-through Cast from a float32 copy of the input (see inputs.py);
GradientModel.float_inputs names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper

from ...errors import FailedPrecondition, InvalidArgument
from . import rules  # noqa: F401  (registers every rule)
from .assemble import assemble
from .emitter import Emitter
from .inputs import float_inputs, integer_inputs
from .paths import check_names, find_path, tensor_names
from .prepare import constant_tensors, default_opset, tensor_types, upgrade_opset
from .registry import RULES

POLICIES = ("standard", "guided_backprop", "deconvnet")


class NotDifferentiable(FailedPrecondition):
    """The path between wrt and start holds ops without a gradient rule."""

    def __init__(self, blocking: Sequence[tuple[str, str]], detail: str = "") -> None:
        listed = ", ".join(f"{op} (node '{name}')" for op, name in blocking)
        super().__init__(
            f"Cannot compute gradients through {listed}{': ' + detail if detail else ''}. "
            f"Supported ops: {', '.join(supported_ops())}. Gradient-free methods (occlusion, "
            "Score-CAM, Ablation-CAM, RISE) still work on this model.")
        self.blocking = list(blocking)


@dataclass(frozen=True)
class GradientModel:
    model: onnx.ModelProto            # forward + backward in one graph
    seed_input: str                   # extra input holding the seed (shape of `start`)
    gradient_outputs: dict[str, str]  # wrt tensor name -> graph output holding its gradient
    fetch_outputs: dict[str, str]     # requested forward tensor name -> graph output name
    # integer model inputs taken as float32 here (fed their integer values as float32): the
    # gradient is the straight-through one of a Cast from the float value, see inputs.py
    float_inputs: tuple[str, ...] = ()


def supported_ops() -> list[str]:
    """Op types with a gradient rule, sorted."""
    return sorted(RULES)


def blocking_ops(model: onnx.ModelProto, start: str | None = None,
                 wrt: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(op_type, node name) of each node on the differentiated path without a usable rule.

    Nodes whose op has a rule but not for this node's attributes (say MaxPool with
    storage_order=1) are found by building the gradient model, so empty means it builds.
    """
    graph = model.graph
    start = start or graph.output[0].name
    inits = {t.name for t in graph.initializer}
    wrt = list(wrt) if wrt is not None else [
        next(i.name for i in graph.input if i.name not in inits)]
    model, through = float_inputs(model, integer_inputs(model, wrt))
    unruled = _unruled(model, start, wrt, through)
    if unruled:
        return unruled
    try:
        build_gradient_model(model, start, wrt)
    except NotDifferentiable as exc:
        return exc.blocking
    return []


def _unruled(model: onnx.ModelProto, start: str, wrt: Sequence[str],
             through: set[str] = frozenset()) -> list[tuple[str, str]]:
    check_names(model.graph, start, wrt)
    path = find_path(model.graph, start, wrt, tensor_types(model), through)
    return [(n.op_type, n.name or n.output[0]) for n in path.nodes if n.op_type not in RULES]


def build_gradient_model(model: onnx.ModelProto, start: str, wrt: Sequence[str], *,
                         policy: str = "standard", fetch: Sequence[str] = (),
                         float32_edges: bool = False) -> GradientModel:
    """A model returning d(sum(seed * start))/d(w) for each w in wrt, plus fetched tensors.

    float32_edges: a float32 seed input and float32 gradient outputs whatever the model's dtype."""
    if policy not in POLICIES:
        raise InvalidArgument(f"Unknown gradient policy '{policy}'; use one of "
                              f"{', '.join(POLICIES)}.", field="policy")
    wrt = list(dict.fromkeys(wrt))
    check_names(model.graph, start, wrt)
    for name in fetch:
        if name not in tensor_names(model.graph):
            raise InvalidArgument(f"The fetch tensor '{name}' is not in the model.", field="fetch")
    integers = integer_inputs(model, wrt)
    model, through = float_inputs(model, integers)
    blocking = _unruled(model, start, wrt, through)
    if blocking:
        raise NotDifferentiable(blocking)
    model = upgrade_opset(model)
    types = tensor_types(model)
    path = find_path(model.graph, start, wrt, types, through)
    em = Emitter(tensor_names(model.graph), types, default_opset(model), policy, path.needs,
                 constant_tensors(model))
    seed = em.fresh("gradient_seed")
    # Static sizes from shape inference are not trusted for the seed (ceil-mode pools differ
    # between onnx and onnxruntime); symbolic names and the rank are kept.
    dims = em.dims(start)
    dims = None if dims is None else [d if isinstance(d, str) else None for d in dims]
    seed_type = TensorProto.FLOAT if float32_edges else em.dtype(start)
    seed_info = helper.make_tensor_value_info(seed, seed_type, dims)
    inner = em.grad_dtype(start) if float32_edges else seed_type
    grads = _backward(path.nodes, start, _cast(em, seed, seed_type, inner, dims), em)
    gradient_outputs = {w: _output_name(em, f"{w}_grad") for w in wrt}
    fetch_outputs = {f: _output_name(em, f"{f}_value") for f in dict.fromkeys(fetch)}
    outputs = [(_cast(em, _total(em, grads.get(w), w), em.grad_dtype(w),
                      TensorProto.FLOAT if float32_edges else em.grad_dtype(w), em.dims(w)),
                gradient_outputs[w]) for w in wrt]
    outputs += [(_readable(em, f) if float32_edges else f, out) for f, out in fetch_outputs.items()]
    result = assemble(model, em, seed_info, [(src, dst, src) for src, dst in outputs])
    return GradientModel(result, seed, gradient_outputs, fetch_outputs, tuple(integers))


def _cast(em: Emitter, x: str, have: int, want: int, dims) -> str:
    """`x` (of type `have`) as type `want`, known to `em` (with `dims`) from now on."""
    if have != want:
        x = em.do("Cast", x, to=want)
    em.types[x] = (want, dims)
    return x


def _readable(em: Emitter, name: str) -> str:
    """A fetched forward tensor, as float32 when numpy has no type for it (bfloat16)."""
    elem = em.dtype(name)
    return _cast(em, name, elem, TensorProto.FLOAT if elem == TensorProto.BFLOAT16 else elem, em.dims(name))


def _total(em: Emitter, parts: list[str] | None, like: str) -> str:
    """The sum of a tensor's gradient contributions; zeros when nothing reached it."""
    if not parts:
        return em.zeros_like(like)
    return parts[0] if len(parts) == 1 else em.do("Sum", *parts)


def _output_name(em: Emitter, wanted: str) -> str:
    if wanted in em.taken:
        return em.fresh(wanted)
    em.taken.add(wanted)
    return wanted


def _backward(nodes: list[onnx.NodeProto], start: str, seed: str,
              em: Emitter) -> dict[str, list[str]]:
    """Run the VJP rules in reverse order; return the gradient contributions per tensor."""
    grads: dict[str, list[str]] = {start: [seed]}

    def total(name: str) -> str | None:
        parts = grads.get(name)
        if not parts:
            return None
        if len(parts) > 1:
            grads[name] = [em.do("Sum", *parts)]
            em.types.setdefault(grads[name][0], (em.grad_dtype(name), None))
        return grads[name][0]

    for node in reversed(nodes):
        outs = [total(o) if o else None for o in node.output]
        if all(g is None for g in outs):
            continue
        try:
            in_grads = RULES[node.op_type].vjp(node, outs, em)
        except NotImplementedError as exc:
            raise NotDifferentiable([(node.op_type, node.name or node.output[0])],
                                    str(exc)) from exc
        for name, g in zip(node.input, in_grads, strict=False):
            if g is not None and em.needs(name):
                grads.setdefault(name, []).append(g)
                # rules may ask for the type of a gradient tensor (a mask on g, a constant like g)
                em.types.setdefault(g, (em.grad_dtype(name), None))
    return grads
