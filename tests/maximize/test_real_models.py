"""Activation maximization on real trained CNNs shipped in PyPI wheels (PP-OCR det and cls)."""


import numpy as np
import onnx

from inspector.maximize import MaximizeConfig, maximize, run_to_end
from inspector.runtime.access import OrtModelAccess


def real_model(real_model_path, name: str, file: str) -> onnx.ModelProto:
    """The installed wheel's model (CI installs the wheels)."""
    return onnx.load(real_model_path(name))


def normalize(mean, std):
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return lambda rgb: ((rgb - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)


def test_text_detector_channels_grow_into_structured_pictures(real_model_path):
    model = real_model(real_model_path, "ppocr-det", "ch_PP-OCRv4_det_infer.onnx")
    access, layer = OrtModelAccess(model), "hardswish_66.tmp_0"
    to_input = normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    res = run_to_end(maximize(access, layer, [0, 1, 2, 3], MaximizeConfig(steps=32), to_input,
                              (64, 64)))
    assert np.all(res.final_objective > 2 * res.initial_objective), res.final_objective
    act = access.forward(res.inputs, fetch=[layer])[layer]
    np.testing.assert_allclose(act.mean((2, 3))[range(4), range(4)], res.final_objective, rtol=1e-4)
    img = res.images.astype(np.float64).mean(-1)
    img -= img.mean((1, 2), keepdims=True)
    neighbour = (img[:, :, 1:] * img[:, :, :-1]).mean((1, 2)) / (img**2).mean((1, 2))
    assert np.all(res.images.std((1, 2, 3)) > 15) and np.all(neighbour > 0.3)  # contrast, not noise


def test_direction_classifier_probability_climbs(real_model_path):
    model = real_model(real_model_path, "ppocr-cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    access = OrtModelAccess(model)
    res = run_to_end(maximize(access, "", [0, 1], MaximizeConfig(objective="probability", steps=24),
                              normalize((0.5,) * 3, (0.5,) * 3), (48, 192)))
    probs = access.forward(res.inputs)[access.output_names[0]]
    np.testing.assert_allclose(probs[[0, 1], [0, 1]], res.final_objective, rtol=1e-4)
    assert np.all(res.final_objective > 0.9) and np.all(res.final_objective > res.initial_objective)


def test_channel_objectives_grow_tenfold_on_a_real_detector(real_model_path):
    """PP-OCR's first ReLU: every channel that the optimizer wakes ends >= 10x its value on the
    starting image (channel 1 stays silent: zero on the start image and no gradient reaches it)."""
    model = real_model(real_model_path, "ppocr-det", "ch_PP-OCRv4_det_infer.onnx")
    access = OrtModelAccess(model)
    channels = [0, 2, 3, 4, 5, 6, 7]
    to_input = normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    res = run_to_end(maximize(access, "relu_0.tmp_0", channels, MaximizeConfig(steps=64), to_input, (64, 64)))
    started = res.initial_objective
    assert np.all(res.final_objective >= 10 * np.maximum(started, 0.05)), (started, res.final_objective)
