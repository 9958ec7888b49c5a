"""Issue 4 ratios, measured in one run on a ResNet-18-sized model at 224x224:

- Grad-CAM for one image in-process vs one plain forward (target <= 1.3x), and over gRPC
- integrated gradients, 50 steps, vs one forward (target <= 120x)
- Score-CAM on a 1280-channel layer (MobileNetV2-like, 224x224) vs one forward: reported
- with a PyTorch Python (TORCH_PYTHON, default /work/benchvenv/bin/python; dev-only), the same
  network through pytorch-grad-cam and Captum: timings side by side and the maps compared
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import ROOT, THREADS, cpu_busy_fraction, interleaved, report


def mobilenet_like():
    """Inverted-residual stages down to 7x7, then a 1x1 conv to 1280 channels (as MobileNetV2)."""
    from factory import CNNBuilder

    b = CNNBuilder((1, 3, 224, 224), seed=1)
    x = b.relu(b.conv(b.input_name, 32, stride=2))
    for out, stride in ((16, 1), (24, 2), (32, 2), (64, 2), (96, 1), (160, 2), (320, 1)):
        c = b.channels[x]
        y = b.relu(b.conv(x, c * 4, k=1))
        y = b.relu(b.conv(y, c * 4, stride=stride, group=c * 4))
        y = b.conv(y, out, k=1)
        x = b.add(x, y) if stride == 1 and c == out else y
    x = b.relu(b.conv(x, 1280, k=1, name="head"), name="head_relu")
    return b.build(b.gemm(b.flatten(b.gap(x)), 1000, name="fc"), output_names=["logits"])


def main() -> int:
    from factory import resnet18_like
    from inspector_client import InspectorClient

    from inspector.config import InspectorConfig
    from inspector.core import InputData
    from inspector.service.server import start_server

    print(f"foreign CPU load before start: {cpu_busy_fraction():.0%}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-attr-"))
    server = start_server(InspectorConfig(store_dir=tmp / "store", intra_op_threads=THREADS), port=0)
    core = server.inspector
    client = InspectorClient(server.address, timeout=900)
    model = resnet18_like()
    (tmp / "r18.onnx").write_bytes(model.SerializeToString())
    client.load_model(model.SerializeToString(), name="r18")
    access = core.open("r18").access
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    np.save(tmp / "x.npy", x)
    top = int(access.forward(x)["logits"].argmax())
    inp = InputData(tensor=x)
    layer = [n.output[0] for n in model.graph.node if n.op_type == "Relu"][-1]

    def explain(method, **params):
        return lambda: core.explain("r18", inp, method, layers=[layer] if "cam" in method else None,
                                    params=params, overlay=False)

    cases = {
        "plain forward": lambda: access.forward(x),
        "Grad-CAM heatmap (in-process)": explain("gradcam", score_after=False),
        "Grad-CAM + score after (in-process)": explain("gradcam"),
        "Grad-CAM with overlay PNG (gRPC)": lambda: client.explain("r18", x, "gradcam", layer=layer),
        "Grad-CAM with overlay PNG, no score after (gRPC)": lambda: client.explain(
            "r18", x, "gradcam", layer=layer, score_after=False),
        "saliency (in-process)": explain("saliency", score_after=False),
    }
    medians = interleaved(cases, rounds=10)
    ig = interleaved({"integrated gradients, 50 steps": explain("integrated_gradients", steps=50,
                                                                 batch_size=25, score_after=False)},
                     rounds=3, warmup=1)
    medians.update(ig)
    results = report("attribution, ResNet-18-like 224x224, batch 1", medians, "plain forward",
                     {"Grad-CAM heatmap (in-process)": 1.3, "integrated gradients, 50 steps": 120})

    mobile = mobilenet_like()
    client.load_model(mobile.SerializeToString(), name="mnv2")
    m_access = core.open("mnv2").access
    score = interleaved({
        "plain forward (MobileNetV2-like)": lambda: m_access.forward(x),
        "Score-CAM, 1280 channels, batches of 64": lambda: core.explain(
            "mnv2", inp, "scorecam", layers=["head_relu_out"], params={"batch_size": 64, "score_after": False},
            overlay=False),
    }, rounds=2, warmup=1)
    results.update(report("Score-CAM on a 1280-channel layer", score, "plain forward (MobileNetV2-like)"))

    torch_python = os.environ.get("TORCH_PYTHON", "/work/benchvenv/bin/python")
    if Path(torch_python).exists():
        results["torch"] = compare_with_torch(torch_python, tmp, layer, top, medians, client, core, x)
    else:
        print(f"\n(no PyTorch Python at {torch_python}: skipped the pytorch-grad-cam / Captum comparison)")
    server.stop(0)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "attribution.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


def compare_with_torch(python, tmp, layer, top, medians, client, core, x) -> dict:
    out = subprocess.run([python, str(ROOT / "benchmarks" / "torch_reference.py"), str(tmp / "r18.onnx"),
                          str(tmp / "x.npy"), str(tmp / "torch.npz"), "--layer", layer, "--target", str(top),
                          "--threads", str(THREADS)], capture_output=True, text=True, check=True)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    maps = np.load(tmp / "torch.npz")
    ours = client.explain("r18", x, "gradcam", target=top, layer=layer)
    from inspector.core import InputData
    from inspector.methods.base import Target

    ig = core.explain("r18", InputData(tensor=x), "integrated_gradients", target=Target(index=(top,)),
                      params={"steps": 50}, overlay=False)  # Gauss-Legendre, as Captum's default
    ig_ours = ig.attribution
    cam_diff = float(np.abs(ours.heatmap - maps["gradcam"]).max())
    ig_rel = float(np.linalg.norm(ig_ours - maps["ig"]) / np.linalg.norm(maps["ig"]))
    print(f"\n== vs PyTorch {theirs['torch']} ({THREADS} threads), same weights and input")
    ours_full = medians["Grad-CAM with overlay PNG (gRPC)"]
    ours_same = medians["Grad-CAM with overlay PNG, no score after (gRPC)"]
    print(f"  torch forward {theirs['forward'] * 1000:.1f} ms; pytorch-grad-cam Grad-CAM {theirs['gradcam'] * 1000:.1f} ms"
          f" vs ours over gRPC {ours_same * 1000:.1f} ms, like for like ({theirs['gradcam'] / ours_same:.2f}x faster;"
          f" {ours_full * 1000:.1f} ms = {theirs['gradcam'] / ours_full:.2f}x with the score-after pass)")
    print(f"  Captum IG 50 steps {theirs['ig50']:.2f} s ({theirs['ig50'] / theirs['forward']:.0f}x its forward) "
          f"vs ours {medians['integrated gradients, 50 steps']:.2f} s")
    print(f"  Grad-CAM maps: max |ours - pytorch-grad-cam| = {cam_diff:.2e}; "
          f"IG (Gauss-Legendre, 50 steps) relative L2 vs Captum = {ig_rel:.2e}")
    return {**theirs, "gradcam_max_abs_diff": cam_diff, "ig_rel_l2": ig_rel}


if __name__ == "__main__":
    sys.exit(main())
