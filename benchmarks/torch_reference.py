"""Dev-only: the same ONNX network in PyTorch, explained by pytorch-grad-cam and Captum.

Run with a Python that has torch, grad-cam and captum (never the package's runtime):
    python benchmarks/torch_reference.py MODEL.onnx INPUT.npy OUT.npz --threads 2
Prints JSON timings; writes the maps so bench_attribution.py can compare them with ours.
Supports the ops of tests/factory.py (Conv, Relu, MaxPool, Add, GlobalAveragePool, Flatten,
Gemm, BatchNormalization, Identity), one nn.Module per node so hooks find every layer.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


class Node(torch.nn.Module):
    def __init__(self, node: onnx.NodeProto, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.op = node.op_type
        self.inputs = [i for i in node.input if i not in weights]
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        self.params = torch.nn.ParameterList(
            [torch.nn.Parameter(weights[i]) for i in node.input if i in weights])

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        a, p = self.attrs, list(self.params)
        if self.op == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            return F.conv2d(xs[0], p[0], p[1] if len(p) > 1 else None, stride=a.get("strides", [1, 1]),
                            padding=pads[:2], dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
        if self.op == "Relu":
            return F.relu(xs[0])
        if self.op == "MaxPool":
            return F.max_pool2d(xs[0], a["kernel_shape"], a.get("strides"), a.get("pads", [0, 0, 0, 0])[:2])
        if self.op == "Add":
            return xs[0] + xs[1]
        if self.op == "GlobalAveragePool":
            return xs[0].mean(dim=(2, 3), keepdim=True)
        if self.op == "Flatten":
            return torch.flatten(xs[0], 1)
        if self.op == "Gemm":
            return F.linear(xs[0], p[0], p[1])
        if self.op == "BatchNormalization":
            return F.batch_norm(xs[0], p[2], p[3], p[0], p[1], False, 0.0, a.get("epsilon", 1e-5))
        if self.op == "Identity":
            return xs[0]
        raise NotImplementedError(self.op)


class OnnxNet(torch.nn.Module):
    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
        self.order = [(n.output[0], n) for n in model.graph.node]
        self.nodes = torch.nn.ModuleDict({f"n{i}": Node(n, weights) for i, (_, n) in enumerate(self.order)})
        self.input = model.graph.input[0].name
        self.output = model.graph.output[0].name
        self.names = {out: f"n{i}" for i, (out, _) in enumerate(self.order)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input: x}
        for i, (out, _) in enumerate(self.order):
            module = self.nodes[f"n{i}"]
            values[out] = module(*[values[name] for name in module.inputs])
        return values[self.output]


def best_of(fn, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("out")
    ap.add_argument("--layer", required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from captum.attr import IntegratedGradients
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    net = OnnxNet(onnx.load(args.model)).eval()
    x = torch.from_numpy(np.load(args.input))
    layer = net.nodes[net.names[args.layer]]
    with torch.no_grad():
        forward = best_of(lambda: net(x), args.rounds)
    cam = GradCAM(model=net, target_layers=[layer])
    targets = [ClassifierOutputTarget(args.target)]
    gradcam = best_of(lambda: cam(input_tensor=x, targets=targets), args.rounds)
    heat = cam(input_tensor=x, targets=targets)
    ig = IntegratedGradients(net)
    run_ig = lambda: ig.attribute(x, target=args.target, n_steps=50, internal_batch_size=50)  # noqa: E731
    ig_time = best_of(run_ig, max(2, args.rounds // 3))
    attribution = run_ig().detach().numpy()
    np.savez(args.out, gradcam=heat, ig=attribution)
    print(json.dumps({"forward": forward, "gradcam": gradcam, "ig50": ig_time,
                      "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()
