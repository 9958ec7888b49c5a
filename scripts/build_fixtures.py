"""Build the fixture zoo: narrow torchvision CNNs exported to ONNX, plus layout/dtype/quantized variants.

Dev only: needs torch + torchvision (+ onnx, onnxscript, onnxruntime) in a SEPARATE venv; the package
never imports torch. Every network has random weights from a fixed seed, reduced widths and depths
and (where the architecture allows) a 64x64 input, so the files stay small (each <= ~2 MB) and the
matrix test (tests/zoo/test_zoo_matrix.py) stays fast. Exports keep torch's default fixed batch of 1.

    python3.11 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch torchvision onnx onnxscript onnxruntime
    /tmp/torchenv/bin/python scripts/build_fixtures.py [--only NAME,...] [--out tests/fixtures/zoo]

Writes tests/fixtures/zoo/<name>.onnx (and <name>.onnx.data for the external-data variant) and
tests/fixtures/zoo/manifest.json: one entry per fixture with name, file, sha256, family, exporter,
opset, variant, inputs (name, shape, dtype), outputs, preprocess spec and a note. Each export is
checked against torch (same outputs on a random input) before it is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from torch import nn
from torchvision.models import (
    convnext,
    densenet,
    efficientnet,
    inception,
    mnasnet,
    mobilenetv3,
    regnet,
    resnet,
    shufflenetv2,
    squeezenet,
    swin_transformer,
    vgg,
    vision_transformer,
)
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.alexnet import AlexNet
from torchvision.models.googlenet import BasicConv2d as GoogLeNetConv
from torchvision.models.googlenet import GoogLeNet, Inception, InceptionAux
from torchvision.models.segmentation import deeplabv3, fcn, lraspp

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "zoo"
SEED = 0
MAX_FILE_MB = 2.2
MAX_TOTAL_MB = 40
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
NUM_CLASSES = 10


# ---- narrow networks ------------------------------------------------------------------------
def _reinit(model: nn.Module, gen: torch.Generator) -> nn.Module:
    """Weights that keep the signal alive through a random network, so outputs, gradients and CAMs
    depend on the input: He-normal convolutions, LeCun-normal linear layers, small random biases,
    non-trivial norm parameters and BatchNorm statistics (the export folds them), ConvNeXt's layer
    scale at 0.5 (torchvision's 1e-6 makes every block an identity)."""

    def randn(*shape, std=1.0):
        return std * torch.randn(shape, generator=gen)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(randn(*m.weight.shape, std=(2.0 / fan_in) ** 0.5))
                if m.bias is not None:
                    m.bias.copy_(randn(*m.bias.shape, std=0.05))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(randn(*m.weight.shape, std=(1.0 / m.in_features) ** 0.5))
                if m.bias is not None:
                    m.bias.copy_(randn(*m.bias.shape, std=0.05))
            elif isinstance(m, nn.LayerNorm | nn.GroupNorm) and m.weight is not None:
                m.weight.copy_(1 + randn(*m.weight.shape, std=0.1))
                m.bias.copy_(randn(*m.bias.shape, std=0.1))
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                n = m.num_features
                m.running_mean.copy_(randn(n, std=0.1))
                m.running_var.copy_(1 + 0.2 * torch.rand(n, generator=gen))
                if m.weight is not None:
                    m.weight.copy_(1 + randn(n, std=0.1))
                    m.bias.copy_(randn(n, std=0.1))
            elif isinstance(m, convnext.CNBlock):
                m.layer_scale.fill_(0.5)
    return model


def narrow_resnet(block=resnet.BasicBlock, widths=(16, 32, 64, 128), in_ch: int = 3) -> nn.Module:
    m = resnet.ResNet(block, [1, 1, 1, 1], num_classes=NUM_CLASSES)
    m.inplanes = widths[0]
    m.conv1 = nn.Conv2d(in_ch, widths[0], 7, 2, 3, bias=False)
    m.bn1 = nn.BatchNorm2d(widths[0])
    m.layer1 = m._make_layer(block, widths[0], 1)
    m.layer2 = m._make_layer(block, widths[1], 1, stride=2)
    m.layer3 = m._make_layer(block, widths[2], 1, stride=2)
    m.layer4 = m._make_layer(block, widths[3], 1, stride=2)
    m.fc = nn.Linear(widths[3] * block.expansion, NUM_CLASSES)
    return m


def _divided_conv(div: int, cls):
    """A conv block factory whose channel counts are `div` times smaller (the RGB input stays 3)."""

    def make(in_channels, out_channels, **kw):
        return cls(in_channels if in_channels == 3 else in_channels // div, out_channels // div, **kw)

    return make


def narrow_googlenet() -> nn.Module:
    conv = _divided_conv(4, GoogLeNetConv)
    m = GoogLeNet(num_classes=NUM_CLASSES, aux_logits=False, transform_input=False, init_weights=True,
                  blocks=[conv, _inception_with(Inception, conv), InceptionAux])
    m.fc = nn.Linear(1024 // 4, NUM_CLASSES)
    return m


def _inception_with(cls, conv):
    def make(*args, **kw):
        kw["conv_block"] = conv
        return cls(*args, **kw)

    return make


def narrow_inception3() -> nn.Module:
    conv = _divided_conv(8, inception.BasicConv2d)
    blocks = [conv] + [_inception_with(c, conv) for c in (
        inception.InceptionA, inception.InceptionB, inception.InceptionC, inception.InceptionD,
        inception.InceptionE, inception.InceptionAux)]
    m = inception.Inception3(num_classes=NUM_CLASSES, aux_logits=False, transform_input=False,
                             inception_blocks=blocks, init_weights=True)
    m.fc = nn.Linear(2048 // 8, NUM_CLASSES)
    return m


def narrow_densenet() -> nn.Module:
    return densenet.DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16, bn_size=2,
                             num_classes=NUM_CLASSES)


def narrow_squeezenet() -> nn.Module:
    m = squeezenet.SqueezeNet("1_1", num_classes=NUM_CLASSES)
    fire = squeezenet.Fire
    m.features = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        fire(16, 4, 16, 16), fire(32, 4, 16, 16),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        fire(32, 8, 32, 32), fire(64, 8, 32, 32),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        fire(64, 12, 48, 48), fire(96, 16, 64, 64))
    m.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(128, NUM_CLASSES, 1), nn.ReLU(inplace=True),
                                 nn.AdaptiveAvgPool2d((1, 1)))
    return m


def narrow_shufflenet() -> nn.Module:
    return shufflenetv2.ShuffleNetV2([2, 2, 2], [16, 32, 64, 128, 256], num_classes=NUM_CLASSES)


def narrow_mobilenetv3(arch: str = "mobilenet_v3_small") -> nn.Module:
    setting, last = mobilenetv3._mobilenet_v3_conf(arch, width_mult=0.25)
    return mobilenetv3.MobileNetV3(setting, last, num_classes=NUM_CLASSES)


def narrow_efficientnet() -> nn.Module:
    setting, last = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.3)
    return efficientnet.EfficientNet(setting, 0.2, last_channel=last, num_classes=NUM_CLASSES)


def narrow_efficientnet_v2() -> nn.Module:
    setting, last = efficientnet._efficientnet_conf("efficientnet_v2_s")
    setting = [s.__class__(s.expand_ratio, s.kernel, s.stride, max(8, s.input_channels // 8),
                           max(8, s.out_channels // 8), 1, block=s.block) for s in setting]
    return efficientnet.EfficientNet(setting, 0.2, last_channel=256, num_classes=NUM_CLASSES)


def narrow_regnet() -> nn.Module:
    params = regnet.BlockParams.from_init_params(depth=4, w_0=16, w_a=8.0, w_m=2.0, group_width=8)
    return regnet.RegNet(params, num_classes=NUM_CLASSES, stem_width=16)


def narrow_mnasnet() -> nn.Module:
    m = mnasnet.MNASNet(0.25, num_classes=NUM_CLASSES)
    # the 1280-wide head conv dominates the size; a 256-wide one keeps the structure
    last = m.layers[14]
    m.layers[14] = nn.Conv2d(last.in_channels, 256, 1, bias=False)
    m.layers[15] = nn.BatchNorm2d(256)
    m.classifier[1] = nn.Linear(256, NUM_CLASSES)
    return m


def narrow_alexnet() -> nn.Module:
    m = AlexNet(num_classes=NUM_CLASSES)
    m.features = nn.Sequential(
        nn.Conv2d(3, 8, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(8, 24, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(24, 48, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(48, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
    m.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(32 * 36, 128), nn.ReLU(inplace=True),
                                 nn.Dropout(0.5), nn.Linear(128, 128), nn.ReLU(inplace=True),
                                 nn.Linear(128, NUM_CLASSES))
    return m


def narrow_vgg(bn: bool = False) -> nn.Module:
    cfg = [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"]  # VGG-11's shape, 8x narrower
    m = vgg.VGG(vgg.make_layers(cfg, batch_norm=bn), num_classes=NUM_CLASSES)
    m.classifier = nn.Sequential(nn.Linear(64 * 49, 64), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, NUM_CLASSES))
    return m


def narrow_convnext() -> nn.Module:
    cfg = convnext.CNBlockConfig
    return convnext.ConvNeXt([cfg(16, 32, 1), cfg(32, 64, 1), cfg(64, None, 1)], num_classes=NUM_CLASSES)


def narrow_vit() -> nn.Module:
    return vision_transformer.VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2,
                                                hidden_dim=32, mlp_dim=64, num_classes=NUM_CLASSES)


def narrow_swin() -> nn.Module:
    return swin_transformer.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                                            window_size=[4, 4], num_classes=NUM_CLASSES)


def _mobilenet_backbone():
    setting, last = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.25, dilated=True)
    features = mobilenetv3.MobileNetV3(setting, last).features
    stage = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    return features, stage[-4], stage[-1]


class _SegOut(nn.Module):
    """torchvision segmentation models return a dict; export its "out" tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def narrow_deeplabv3() -> nn.Module:
    body = IntermediateLayerGetter(narrow_resnet(), {"layer4": "out"})
    head = nn.Sequential(deeplabv3.ASPP(128, [2, 4, 6], out_channels=32), nn.Conv2d(32, 32, 3, padding=1, bias=False),
                         nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 5, 1))
    return _SegOut(deeplabv3.DeepLabV3(body, head))


def narrow_fcn() -> nn.Module:
    body = IntermediateLayerGetter(narrow_resnet(), {"layer4": "out"})
    return _SegOut(fcn.FCN(body, fcn.FCNHead(128, 5)))


def narrow_lraspp() -> nn.Module:
    features, low, high = _mobilenet_backbone()
    body = IntermediateLayerGetter(features, {str(low): "low", str(high): "high"})
    return _SegOut(lraspp.LRASPP(body, features[low].out_channels, features[high].out_channels, 5,
                                 inter_channels=32))


class _Detections(nn.Module):
    """torchvision detectors take a list of images and return a list of dicts; export the first
    image's boxes, scores and labels (their count depends on the data: NMS inside the graph)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(list(x))[0]
        return out["boxes"], out["scores"], out["labels"]


def narrow_ssdlite() -> nn.Module:
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet, SSDLiteHead

    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    setting, last = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.25, reduced_tail=True)
    features = mobilenetv3.MobileNetV3(setting, last, norm_layer=norm).features
    stages = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    extractor = SSDLiteFeatureExtractorMobileNet(features, stages[-2], norm, width_mult=0.25, min_depth=8)
    size = (160, 160)
    anchors = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    head = SSDLiteHead(det_utils.retrieve_out_channels(extractor, size), anchors.num_anchors_per_location(), 3, norm)
    return _Detections(SSD(extractor, anchors, size, 3, head=head, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                           score_thresh=0.001, detections_per_img=50, topk_candidates=100, nms_thresh=0.55))


# ---- wrappers for input variants ---------------------------------------------------------------
class Nhwc(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.permute(0, 3, 1, 2))


class Uint8Input(nn.Module):
    """uint8 pixels in, the float normalization inside the graph (as many deployed models do)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET["std"]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.net((x.float() / 255.0 - self.mean) / self.std)


class Siamese(nn.Module):
    """Two images through one shared trunk; a head scores |f(a) - f(b)| (two inputs, one output)."""

    def __init__(self):
        super().__init__()
        trunk = narrow_resnet()
        trunk.fc = nn.Identity()
        self.trunk = trunk
        self.head = nn.Linear(128, 2)

    def forward(self, a, b):
        return self.head(torch.abs(self.trunk(a) - self.trunk(b)))


# ---- the zoo ---------------------------------------------------------------------------------
@dataclass
class Spec:
    name: str
    family: str
    make: Callable[[], nn.Module]
    shape: tuple = (1, 3, 64, 64)
    exporter: str = "torchscript"  # or "dynamo"
    opset: int = 17
    variant: str = "fp32"
    dtype: str = "float32"
    inputs: tuple = ("input",)
    outputs: tuple = ("logits",)
    preprocess: dict | None = field(default_factory=lambda: {"resize": [64, 64], **IMAGENET})
    post: str | None = None  # fp16 | qdq | qoperator | dynamic | external
    note: str = ""


def _pre(h, w, **extra):
    return {"resize": [h, w], **IMAGENET, **extra}


SPECS: list[Spec] = [
    Spec("resnet_op13", "resnet", narrow_resnet, opset=13, note="ResNet-18 shape, 1 block per stage, widths 16-128"),
    Spec("resnet_op17", "resnet", narrow_resnet),
    Spec("resnet_dynamo", "resnet", narrow_resnet, exporter="dynamo", opset=18),
    Spec("resnet_bottleneck", "resnet", lambda: narrow_resnet(resnet.Bottleneck, (8, 16, 32, 64)),
         note="ResNet-50 shape (Bottleneck), widths 8-64 (x4)"),
    Spec("densenet", "densenet", narrow_densenet),
    Spec("googlenet", "inception", narrow_googlenet, note="GoogLeNet with 4x fewer channels"),
    Spec("inception3", "inception", narrow_inception3, shape=(1, 3, 96, 96), preprocess=_pre(96, 96),
         note="Inception-v3 with 8x fewer channels at 96x96 (75x75 is its minimum)"),
    Spec("squeezenet", "squeezenet", narrow_squeezenet, outputs=("logits",)),
    Spec("shufflenet", "shufflenet", narrow_shufflenet),
    Spec("mobilenetv3", "mobilenetv3", narrow_mobilenetv3, note="MobileNetV3-small, width 0.25"),
    Spec("mobilenetv3_op13", "mobilenetv3", narrow_mobilenetv3, opset=13),
    Spec("mobilenetv3_dynamo", "mobilenetv3", narrow_mobilenetv3, exporter="dynamo", opset=18),
    Spec("efficientnet", "efficientnet", narrow_efficientnet, note="EfficientNet-B0, width 0.25, depth 0.3"),
    Spec("efficientnet_v2", "efficientnet", narrow_efficientnet_v2, note="EfficientNetV2-S stages (Fused-MBConv), 8x narrower, 1 layer each"),
    Spec("regnet", "regnet", narrow_regnet),
    Spec("mnasnet", "mnasnet", narrow_mnasnet),
    Spec("alexnet", "alexnet", narrow_alexnet, shape=(1, 3, 224, 224), preprocess=_pre(224, 224),
         note="AlexNet 8x narrower at 224x224 (its 6x6 adaptive pool needs a 6x6 map)"),
    Spec("vgg", "vgg", narrow_vgg, shape=(1, 3, 224, 224), preprocess=_pre(224, 224),
         note="VGG-11 8x narrower at 224x224 (its 7x7 adaptive pool needs a 7x7 map)"),
    Spec("vgg_bn_op13", "vgg", lambda: narrow_vgg(True), shape=(1, 3, 224, 224), preprocess=_pre(224, 224), opset=13),
    Spec("convnext", "convnext", narrow_convnext),
    Spec("convnext_dynamo", "convnext", narrow_convnext, exporter="dynamo", opset=18),
    Spec("vit", "vit", narrow_vit, note="ViT 64x64, patch 16, 2 layers, hidden 32"),
    Spec("vit_dynamo", "vit", narrow_vit, exporter="dynamo", opset=18),
    Spec("vit_op14", "vit", narrow_vit, opset=14, note="opset 14 (scaled_dot_product_attention needs 14): LayerNormalization decomposed"),
    Spec("swin", "swin", narrow_swin, note="Swin-T shape, embed 16, depths (1, 1), window 4"),
    Spec("swin_dynamo", "swin", narrow_swin, exporter="dynamo", opset=18),
    Spec("densenet_dynamo", "densenet", narrow_densenet, exporter="dynamo", opset=18),
    Spec("efficientnet_dynamo", "efficientnet", narrow_efficientnet, exporter="dynamo", opset=18),
    Spec("squeezenet_op13", "squeezenet", narrow_squeezenet, opset=13),
    Spec("deeplabv3", "segmentation", narrow_deeplabv3, outputs=("out",)),
    Spec("fcn", "segmentation", narrow_fcn, outputs=("out",)),
    Spec("lraspp", "segmentation", narrow_lraspp, outputs=("out",)),
    Spec("lraspp_dynamo", "segmentation", narrow_lraspp, outputs=("out",), exporter="dynamo", opset=18),
    Spec("ssdlite", "detection", narrow_ssdlite, shape=(1, 3, 160, 160), outputs=("boxes", "scores", "labels"),
         preprocess={"resize": [160, 160]},
         note="SSDlite (MobileNetV3-large 0.25, extras 0.25) at 160x160; NMS inside: box count depends on the data"),
    # variants
    Spec("resnet_fp16", "resnet", narrow_resnet, variant="fp16", dtype="float16", post="fp16",
         preprocess=_pre(64, 64, dtype="float16"), note="model.half() exported: float16 weights, input and output"),
    Spec("resnet_qdq", "resnet", narrow_resnet, variant="qdq", post="qdq",
         note="onnxruntime static quantization, QDQ format, per-channel int8 weights"),
    Spec("resnet_qoperator", "resnet", narrow_resnet, variant="qoperator", post="qoperator",
         note="onnxruntime static quantization, QOperator format (QLinearConv, ...)"),
    Spec("mobilenetv3_qdq", "mobilenetv3", narrow_mobilenetv3, variant="qdq", post="qdq"),
    Spec("resnet_dynamic_quant", "resnet", narrow_resnet, variant="dynamic", post="dynamic",
         note="onnxruntime dynamic quantization (ConvInteger/MatMulInteger)"),
    Spec("vit_dynamic_quant", "vit", narrow_vit, variant="dynamic", post="dynamic"),
    Spec("resnet_external", "resnet", narrow_resnet, variant="external", post="external",
         note="weights in resnet_external.onnx.data (load by server path)"),
    Spec("resnet_nhwc", "resnet", lambda: Nhwc(narrow_resnet()), shape=(1, 64, 64, 3), variant="nhwc",
         preprocess=_pre(64, 64, layout="NHWC"), note="NHWC input, transposed inside the graph"),
    Spec("resnet_gray", "resnet", lambda: narrow_resnet(in_ch=1), shape=(1, 1, 64, 64), variant="1ch",
         preprocess={"resize": [64, 64], "mean": [0.5], "std": [0.25]}),
    Spec("resnet_rgba", "resnet", lambda: narrow_resnet(in_ch=4), shape=(1, 4, 64, 64), variant="4ch",
         preprocess=None, note="4-channel input: no image preprocessing (tensors only)"),
    Spec("resnet_uint8", "resnet", lambda: Uint8Input(narrow_resnet()), variant="uint8", dtype="uint8",
         preprocess={"resize": [64, 64], "scale": 1.0, "dtype": "uint8"},
         note="uint8 pixels in; Cast, /255 and normalization inside the graph"),
    Spec("siamese", "siamese", Siamese, variant="two_inputs", inputs=("a", "b"), outputs=("score",),
         note="two image inputs through a shared ResNet trunk"),
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _example(spec: Spec, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    if spec.dtype == "uint8":
        return tuple(torch.randint(0, 256, spec.shape, generator=gen, dtype=torch.uint8) for _ in spec.inputs)
    x = tuple(torch.randn(spec.shape, generator=gen) for _ in spec.inputs)
    return tuple(t.half() for t in x) if spec.dtype == "float16" else x


class _Calibration:
    def __init__(self, name: str, shape: tuple, n: int = 8) -> None:
        rng = np.random.default_rng(SEED)
        self.batches = iter([{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.batches, None)


def _quantize(src: Path, dst: Path, spec: Spec) -> None:
    from onnxruntime import quantization as q

    pre = dst.with_suffix(".pre.onnx")
    q.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    if spec.post == "dynamic":
        q.quantize_dynamic(str(pre), str(dst), weight_type=q.QuantType.QInt8)
    else:
        fmt = q.QuantFormat.QDQ if spec.post == "qdq" else q.QuantFormat.QOperator
        q.quantize_static(str(pre), str(dst), _Calibration(spec.inputs[0], spec.shape), quant_format=fmt,
                          per_channel=spec.post == "qdq", activation_type=q.QuantType.QUInt8,
                          weight_type=q.QuantType.QInt8)
    pre.unlink()


def _export(spec: Spec, model: nn.Module, args: tuple, path: Path) -> None:
    kw = dict(input_names=list(spec.inputs), output_names=list(spec.outputs), opset_version=spec.opset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.exporter == "dynamo":
            prog = torch.onnx.export(model, args, dynamo=True, external_data=False, **kw)
            prog.save(str(path))
        else:
            torch.onnx.export(model, args, str(path), dynamo=False, do_constant_folding=True, **kw)


def build(spec: Spec, out: Path, tmp: Path) -> dict:
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = _reinit(spec.make(), gen).eval()
    if spec.dtype == "float16":
        model = model.half()
    args = _example(spec, gen)
    raw = tmp / f"{spec.name}.raw.onnx"
    _export(spec, model, args, raw)
    final = out / f"{spec.name}.onnx"
    if spec.post in ("qdq", "qoperator", "dynamic"):
        _quantize(raw, tmp / f"{spec.name}.q.onnx", spec)
        shutil.move(tmp / f"{spec.name}.q.onnx", raw)
    proto = onnx.load(str(raw))
    files = [final.name]
    for stale in (final, out / f"{final.name}.data"):
        stale.unlink(missing_ok=True)
    if spec.post == "external":
        data = f"{final.name}.data"
        onnx.save_model(proto, str(final), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data, size_threshold=0)
        files.append(data)
        onnx.checker.check_model(str(final))
    else:
        onnx.checker.check_model(proto)
        onnx.save_model(proto, str(final))
    # the export computes what torch computes (quantized ones: roughly)
    sess = ort.InferenceSession(str(final), providers=["CPUExecutionProvider"])
    feeds = {name: a.numpy() for name, a in zip(spec.inputs, args, strict=True)}
    got = sess.run(None, feeds)[0].astype(np.float64)
    with torch.no_grad():
        want = model(*args)
        want = (want[0] if isinstance(want, tuple) else want).double().numpy()
    if spec.family == "detection":  # NMS ties on random weights: compare the boxes both kept
        n = min(len(got), len(want))
        got, want = got[:n], want[:n]
    scale = max(1e-6, float(np.abs(want).max()))
    tol = {"fp16": 2e-2, "qdq": 0.5, "qoperator": 0.5, "dynamic": 0.5}.get(spec.post, 1e-4)
    err = float(np.abs(got - want).max()) / scale
    if err > tol:
        raise RuntimeError(f"{spec.name}: onnxruntime differs from torch by {err:.3g} (relative to max |y|)")
    other = {name: (a.numpy() // 2 + 60 if a.dtype == torch.uint8 else -a.numpy()) for name, a in zip(
        spec.inputs, args, strict=True)}
    moved = sess.run(None, other)[0].astype(np.float64)
    n = min(len(moved), len(got))
    spread = float(np.abs(moved[:n] - got[:n]).max()) / scale
    if spread < 2e-3:
        raise RuntimeError(f"{spec.name}: the output hardly depends on the input ({spread:.2g})")
    size = sum((out / f).stat().st_size for f in files)
    if size > MAX_FILE_MB * 2**20:
        raise RuntimeError(f"{spec.name}: {size / 2**20:.2f} MB is over {MAX_FILE_MB} MB")
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    return {
        "name": spec.name, "file": final.name, "sha256": _sha256(final),
        "data_file": files[1] if len(files) > 1 else None,
        "data_sha256": _sha256(out / files[1]) if len(files) > 1 else None,
        "family": spec.family, "exporter": f"torch.onnx.export({spec.exporter})", "opset": opsets.get("ai.onnx"),
        "variant": spec.variant,
        "inputs": [{"name": n, "shape": list(spec.shape), "dtype": spec.dtype} for n in spec.inputs],
        "outputs": [o.name for o in sess.get_outputs()],
        "preprocess": spec.preprocess, "size_bytes": size, "torch_vs_ort_rel_err": err,
        "note": spec.note,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--only", default="", help="comma-separated fixture names (the manifest keeps the others)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    manifest_path = a.out / "manifest.json"
    old = {e["name"]: e for e in json.loads(manifest_path.read_text())["fixtures"]} if manifest_path.exists() else {}
    only = {n for n in a.only.split(",") if n}
    entries, failures = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in SPECS:
            if only and spec.name not in only:
                if spec.name in old:
                    entries[spec.name] = old[spec.name]
                continue
            try:
                entries[spec.name] = build(spec, a.out, Path(tmp))
                e = entries[spec.name]
                print(f"{spec.name:24s} {e['size_bytes'] / 2**20:6.2f} MB  opset {e['opset']}  err {e['torch_vs_ort_rel_err']:.2g}",
                      flush=True)
            except Exception as exc:  # report every family that cannot be built, then fail
                failures[spec.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                print(f"{spec.name:24s} FAILED {failures[spec.name]}", flush=True)
    total = sum(e["size_bytes"] for e in entries.values())
    manifest = {
        "generator": "scripts/build_fixtures.py", "seed": SEED,
        "torch": torch.__version__, "torchvision": torchvision.__version__, "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "not_built": {
            "fasterrcnn": ("not attempted: its two-stage heads (RPN, MultiScaleRoIAlign, TwoMLPHead with a "
                           "1024-wide representation) do not narrow below ~2 MB without rewriting them; "
                           "SSDlite covers in-graph NMS and data-dependent output counts"),
            **failures},
        "fixtures": [entries[s.name] for s in SPECS if s.name in entries],
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(entries)} fixtures, {total / 2**20:.1f} MB; failed: {sorted(failures) or 'none'}")
    if total > MAX_TOTAL_MB * 2**20:
        print(f"total over {MAX_TOTAL_MB} MB", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
