"""In-process and through the client, every call returns the same object: the same type, the same
field names, equal values (the server's own core answers the in-process side)."""

import dataclasses
import io

import numpy as np
import onnx
import pytest
from factory import small_cnn
from inspector_client import types
from onnx import helper
from PIL import Image


@pytest.fixture(scope="module")
def pair(server):
    from inspector_client import InspectorClient

    with InspectorClient(server.address, timeout=120) as client:
        client.load_model(small_cnn(seed=11).SerializeToString(), name="same",
                          preprocess={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})
        yield server.inspector, client


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


X = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)


def assert_same(a, b, path="result"):
    """Field by field (arrays exactly, floats within 1e-6), and the same type on both sides."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, dict):  # JSON objects on the wire keep no order
        assert sorted(a) == sorted(b), f"{path}: keys {list(a)} vs {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{path}: {len(a)} vs {len(b)} entries"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-6), path
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def test_model_info_and_forward_calls(pair):
    core, client = pair
    assert_same(core.model_info("same"), client.model_info("same"))
    assert client.model_info("same").providers == ("CPUExecutionProvider",)
    assert_same(core.infer("same", X), client.infer("same", X))
    images = [_png(1), _png(2)]  # encoded images, preprocessed by the stored spec
    assert_same(core.infer("same", images), client.infer("same", images))
    kw = {"raw": True, "png": True, "stats": True, "top_k": 4}
    assert_same(core.feature_maps("same", X, ["relu1", "relu2_out"], **kw),
                client.feature_map_results("same", X, ["relu1", "relu2_out"], **kw))
    kw = {"raw": True, "png": True, "histogram": True, "stats": True}
    assert_same(core.weights("same", ["conv1", "fc"], **kw), client.weight_results("same", ["conv1", "fc"], **kw))


def test_gradients_explain_evaluate(pair):
    core, client = pair
    assert_same(core.gradients("same", X, ["relu2_out"], target=3),
                client.gradients("same", X, ["relu2_out"], target=3))
    ours, theirs = core.explain("same", X, "gradcam", target=[2]), client.explain("same", X, "gradcam", target=[2])
    assert_same(ours, theirs)
    assert len(ours.overlay_png) == 2 and ours.layer == ours.layers and ours.target == ours.targets
    assert_same(core.explain("same", _png(3), "smoothgrad", base="inputxgradient", samples=2),
                client.explain("same", _png(3), "smoothgrad", base="inputxgradient", samples=2))
    assert_same(core.evaluate("same", X, ours, ["deletion", "confidence"], steps=4),
                client.evaluate("same", X, theirs, ["deletion", "confidence"], steps=4))


def test_long_calls_and_their_progress(pair):
    core, client = pair
    seen_core, seen_client = [], []
    kw = {"steps": 3, "preview_every": 2, "size": 32, "transforms": False}
    assert_same(core.maximize("same", "relu2", [0, 5], on_progress=seen_core.append, **kw),
                client.maximize("same", "relu2", [0, 5], on_progress=seen_client.append, **kw))
    assert_same(seen_core, seen_client)
    assert [bool(p.previews) for p in seen_core] == [False, True, False]
    batches = [X, X[:1]]
    seen_core, seen_client = [], []
    ours = core.audit("same", batches, checkpoint_every=1, on_progress=seen_core.append)
    theirs = client.audit("same", batches, checkpoint_every=1, on_progress=seen_client.append)
    assert_same(dict(ours), dict(theirs))
    assert ours.images == theirs.images == 3
    assert [p.step for p in seen_core] == [p.step for p in seen_client] == [2, 3]
    assert all(p.checkpoint for p in seen_client)


def test_a_logit_objective_climbs_the_logits_under_a_final_softmax(pair, server):
    core, client = pair
    model = small_cnn(seed=12)
    model.graph.output[0].name = "probs"
    model.graph.node[-1].output[0] = "logits"
    model.graph.node.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    onnx.checker.check_model(model)
    client.load_model(model.SerializeToString(), name="ends-in-softmax")
    kw = {"steps": 2, "objective": "logit", "size": 32}
    theirs = client.maximize("ends-in-softmax", None, [4], **kw)
    assert theirs.layer == "logits" and theirs.kind == "logit"
    assert_same(core.maximize("ends-in-softmax", None, [4], **kw), theirs)
    logits = core.infer("ends-in-softmax", theirs.inputs)  # the final objective is the logit itself
    np.testing.assert_allclose(theirs.final_objective, core.feature_maps(
        "ends-in-softmax", theirs.inputs, ["logits"])["logits"][:, 4], rtol=1e-5)
    assert np.all(logits["probs"] <= 1.0)


def test_every_result_type_round_trips_its_wire_form(pair):
    core, _ = pair
    results = [core.infer("same", X), core.feature_maps("same", X, ["relu1"], png=True, stats=True),
               core.weights("same", ["conv1"], png=True, stats=True), core.gradients("same", X),
               core.explain("same", X), core.evaluate("same", X, np.ones((2, 32, 32), np.float32), steps=2),
               core.maximize("same", "relu1", [1], steps=2, size=32),
               core.audit("same", [X], columnar=True)]
    assert {type(r) for r in results} == set(types.RESULTS)
    for r in results:
        back = type(r).from_wire(r.to_wire())
        if isinstance(r, types.AuditReport):  # the wire form expands the columns, as the client does
            r = r.expanded()
            assert all("channels" in layer for layer in back["layers"].values())
        assert_same(r, back)


def test_labelled_grids_say_which_channels_they_show(pair):
    core, client = pair
    kw = {"png": True, "raw": True, "top_k": 3, "label": True}
    ours = core.feature_maps("same", X, ["relu2_out"], **kw)
    assert_same(ours, client.feature_map_results("same", X, ["relu2_out"], **kw))
    t = ours.tensors["relu2_out"]
    for i, shown in enumerate(ours.channels["relu2_out"]):
        means = t[i].reshape(t.shape[1], -1).mean(axis=1)
        assert shown == list(np.argsort(-means, kind="stable")[:3])  # the top-3 by mean activation
    plain = core.feature_maps("same", X, ["relu2_out"], png=True, top_k=3).pngs["relu2_out"][0]
    labelled = ours.pngs["relu2_out"][0]
    assert Image.open(io.BytesIO(labelled)).size[0] > Image.open(io.BytesIO(plain)).size[0]  # room for labels
    indices = np.asarray(Image.open(io.BytesIO(labelled)))  # palette indices: a colour bar row runs min..max
    bar = [row for row in indices if row[2] == 0 and np.all(np.diff(row[2:-2].astype(int)) >= 0)
           and row[-3] >= 250]
    assert bar, "no colour bar under the labelled grid"


def test_show_cam_on_image_draws_on_the_users_own_picture(pair):
    """The client's helper at the picture's true size; at the model's size it equals the server's overlay."""
    from inspector_client.overlay import show_cam_on_image

    core, _ = pair
    png = _png(7)  # 48 x 40, preprocessed to 32 x 32 for the model
    exp = core.explain("same", [png, png], "gradcam", target=1)
    mine = show_cam_on_image(png, exp.heatmap[0])
    assert mine.shape == (40, 48, 3)
    from inspector.imaging.render import render_overlay

    square = np.asarray(Image.open(io.BytesIO(png)).convert("RGB").resize((32, 32)))
    server = np.asarray(Image.open(io.BytesIO(render_overlay(square, exp.heatmap[0]))))
    ours = show_cam_on_image(square, exp.heatmap[0])
    assert np.abs(ours.astype(int) - server.astype(int)).max() <= 1  # the same jet, the same blend
    assert show_cam_on_image(png, exp.heatmap[0], png=True).startswith(b"\x89PNG")


def test_overlays_of_images_are_drawn_on_the_picture_at_its_true_size(pair):
    core, client = pair
    exp = client.explain("same", [_png(8)], "gradcam")  # 48 x 40 pictures; the model sees 32 x 32
    assert Image.open(io.BytesIO(exp.overlay_png[0])).size == (48, 40)
    tensor_exp = core.explain("same", X, "gradcam")  # a tensor input: the input as the model saw it
    assert Image.open(io.BytesIO(tensor_exp.overlay_png[0])).size == (32, 32)


def test_heat_on_the_original_undoes_the_crop_and_the_resize():
    from inspector.domain import PreprocessSpec, TensorInfo
    from inspector.imaging.preprocess import heat_on_original
    from inspector.imaging.spec import resolve_spec

    spec = resolve_spec(PreprocessSpec(resize=40, crop=(32, 32)), TensorInfo("x", "float32", (1, 3, 32, 32)))
    heat = heat_on_original(np.ones((32, 32)), spec, (80, 120))  # resized to 40 x 60, cropped at (4, 14)
    assert heat.shape == (80, 120)
    assert heat[40, 60] == pytest.approx(1.0) and heat[40, 5] == pytest.approx(0.0)  # outside the crop
    assert heat[5, 60] == pytest.approx(0.0) and heat[40, 40] == pytest.approx(1.0)
