"""Imaging end to end on real third-party models: preprocess, run on onnxruntime, render."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import onnx
import onnxruntime as ort
from imaging_samples import encode, real_model_path
from onnx import numpy_helper
from PIL import Image, ImageDraw

from inspector.domain import PreprocessSpec, TensorInfo
from inspector.imaging.palette import LEVELS
from inspector.imaging.preprocess import preprocess_images, resolve_spec, to_display
from inspector.imaging.render import render_feature_grid, render_filter_grid, render_overlay

CLS = "ch_ppocr_mobile_v2.0_cls_infer.onnx"


def _input_info(model: onnx.ModelProto) -> TensorInfo:
    value = model.graph.input[0]
    dims = tuple(d.dim_value if d.dim_value > 0 else (d.dim_param or None)
                 for d in value.type.tensor_type.shape.dim)
    return TensorInfo(value.name, "float32", dims)


def _run_with(model: onnx.ModelProto, layer: str, x: np.ndarray) -> np.ndarray:
    """Run the model with one intermediate tensor added to its outputs."""
    model.graph.output.append(onnx.helper.make_tensor_value_info(layer, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run([layer], {model.graph.input[0].name: x})[0]


def _constant(model: onnx.ModelProto, name: str) -> np.ndarray:
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name))


def _text_line() -> bytes:
    image = Image.new("RGB", (300, 64), "white")
    ImageDraw.Draw(image).text((10, 14), "inspector 2026", fill="black", font_size=32)
    return encode(image, "JPEG", quality=95)


def test_ocr_classifier_layer_grid_filters_and_overlay(tmp_path: Path):
    model = onnx.load(str(real_model_path(CLS)))
    spec = resolve_spec(PreprocessSpec(resize=(48, 192), mean=(0.5,) * 3, std=(0.5,) * 3),
                        _input_info(model))
    x = preprocess_images([_text_line()], spec)
    assert x.shape == (1, 3, 48, 192) and -1.0 <= x.min() and x.max() <= 1.0
    layer = _run_with(model, "hardswish_0.tmp_0", x)[0]  # first activation, [C, 24, 96]
    c, h, w = layer.shape

    png = render_feature_grid(layer, top_k=4)
    (tmp_path / "cls_grid.png").write_bytes(png)
    grid = np.asarray(Image.open(io.BytesIO(png)))
    order = np.argsort(-layer.reshape(c, -1).mean(1), kind="stable")[:4]
    for i, channel in enumerate(order):  # 4 tiles of 24x96 -> grid of 4 rows x 1 column
        tile = grid[i * (h + 1): i * (h + 1) + h, :w]
        m = layer[channel]
        expected = np.rint((m - m.min()) / (m.max() - m.min()) * (LEVELS - 1))
        np.testing.assert_array_equal(tile, expected)

    weights = _constant(model, "conv1_weights")
    assert weights.shape[1] == 3
    png = render_filter_grid(weights)
    (tmp_path / "cls_filters.png").write_bytes(png)
    filters = np.asarray(Image.open(io.BytesIO(png)))
    first = weights[0] / np.abs(weights[0]).max()  # tile 0: 3x3 kernel enlarged 8x
    expected = np.rint((0.5 + 0.5 * first.transpose(1, 2, 0)) * 255)
    np.testing.assert_array_equal(filters[:24:8, :24:8], expected)

    heat = layer.mean(axis=0)
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    shown = to_display(x[0], spec)
    png = render_overlay(shown, heat, alpha=0.4)
    (tmp_path / "cls_overlay.png").write_bytes(png)
    overlay = np.asarray(Image.open(io.BytesIO(png))).astype(float)
    big = np.asarray(Image.fromarray(heat.astype(np.float32)).resize((192, 48), Image.Resampling.BILINEAR))
    colour = matplotlib.colormaps["jet"](big, bytes=True)[..., :3]
    # Pillow's bilinear differs from align_corners=False only at the borders: check the interior
    blend = 0.6 * shown + 0.4 * colour.astype(float)
    assert np.abs(overlay[4:-4, 4:-4] - blend[4:-4, 4:-4]).mean() < 2.0


def test_detector_input_matches_its_photo_preprocessing():
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"  # ships with matplotlib
    model = onnx.load(str(real_model_path("320n.onnx")))
    spec = resolve_spec(PreprocessSpec(resize=(320, 320)), _input_info(model))
    x = preprocess_images([path.read_bytes()], spec)
    reference = np.asarray(Image.open(path).convert("RGB").resize((320, 320), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), reference / 255, atol=1e-6)
    layer = _run_with(model, "/model.0/act/Mul_output_0", x)[0]
    assert layer.shape == (16, 160, 160) and np.isfinite(layer).all()
    grid = np.asarray(Image.open(io.BytesIO(render_feature_grid(layer, normalize="layer"))))
    lo, hi = layer.min(), layer.max()
    np.testing.assert_array_equal(grid[:160, :160], np.rint((layer[0] - lo) / (hi - lo) * (LEVELS - 1)))
