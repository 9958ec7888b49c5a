"""What the browser tests and scripts/screenshots.py share: the system Chromium driven by Playwright
(no browser download), a real inspector server with its HTTP edge on a loopback port, and test
models (the small CNN and a ResNet-50-sized synthetic graph)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

INSTALL_HINT = (
    "the browser tests drive the system Chromium with Playwright; install both:\n"
    "  apt-get install -y chromium            # Debian/Ubuntu (as root, or with sudo)\n"
    "  .venv/bin/pip install playwright       # the Python driver (no `playwright install`)\n"
    "or point $INSPECTOR_CHROMIUM at a Chromium/Chrome executable."
)


class BrowserMissing(RuntimeError):
    pass


def chromium_path() -> str:
    """The Chromium to drive: $INSPECTOR_CHROMIUM, else chromium / chromium-browser / google-chrome."""
    given = os.environ.get("INSPECTOR_CHROMIUM")
    if given:
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            raise BrowserMissing(f"$INSPECTOR_CHROMIUM={given} is not an executable file.\n{INSTALL_HINT}")
        return given
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing(f"no Chromium found on PATH.\n{INSTALL_HINT}")


def launch(playwright):
    """The system Chromium, headless (sandbox off: CI runs as root in a container)."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])


def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        raise BrowserMissing(f"the playwright package is not installed.\n{INSTALL_HINT}") from None
    return start()


def start_inspector(store: Path, tokens: tuple[str, ...] = ()):
    """A real server (gRPC on a free port, HTTP on another) with a fresh store."""
    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    config = InspectorConfig(store_dir=store, intra_op_threads=2, vetting=False, auth_tokens=tokens)
    return start_server(config, port=0, http_port=0)


def small_cnn_bytes(seed: int = 21) -> bytes:
    from factory import small_cnn

    return small_cnn(seed=seed).SerializeToString()


def resnet50_like(seed: int = 0, size: int = 64, width: int = 8, classes: int = 10) -> onnx.ModelProto:
    """A ResNet-50-shaped graph (stem, 3+4+6+3 bottleneck blocks with BatchNorm, head): about 180
    nodes, with narrow channels so that it stays small and fast."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    count = [0]

    def name(kind: str) -> str:
        count[0] += 1
        return f"{kind}{count[0]}"

    def conv(x: str, cin: int, cout: int, k: int, stride: int = 1) -> str:
        n = name("conv")
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"{n}.weight"))
        nodes.append(helper.make_node("Conv", [x, f"{n}.weight"], [f"{n}_out"], name=n, kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4))
        b = name("bn")
        for part, value in (("scale", 1.0), ("bias", 0.0), ("mean", 0.0), ("var", 1.0)):
            arr = (value + 0.1 * rng.standard_normal(cout)).astype(np.float32)
            inits.append(numpy_helper.from_array(np.abs(arr) if part == "var" else arr, f"{b}.{part}"))
        nodes.append(helper.make_node("BatchNormalization", [f"{n}_out"] + [f"{b}.{p}" for p in
                                      ("scale", "bias", "mean", "var")], [f"{b}_out"], name=b))
        return f"{b}_out"

    def relu(x: str) -> str:
        n = name("relu")
        nodes.append(helper.make_node("Relu", [x], [f"{n}_out"], name=n))
        return f"{n}_out"

    x = relu(conv("input", 3, width, 7, 2))
    n = name("maxpool")
    nodes.append(helper.make_node("MaxPool", [x], [f"{n}_out"], name=n, kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x, cin = f"{n}_out", width
    for stage, blocks in enumerate((3, 4, 6, 3)):
        mid = width * 2**stage
        cout = mid * 4
        for b in range(blocks):
            stride = 2 if b == 0 and stage > 0 else 1
            y = relu(conv(x, cin, mid, 1))
            y = relu(conv(y, mid, mid, 3, stride))
            y = conv(y, mid, cout, 1)
            short = conv(x, cin, cout, 1, stride) if b == 0 else x
            a = name("add")
            nodes.append(helper.make_node("Add", [y, short], [f"{a}_out"], name=a))
            x, cin = relu(f"{a}_out"), cout
    n = name("gap")
    nodes.append(helper.make_node("GlobalAveragePool", [x], [f"{n}_out"], name=n))
    f = name("flatten")
    nodes.append(helper.make_node("Flatten", [f"{n}_out"], [f"{f}_out"], name=f))
    fc = name("fc")
    inits.append(numpy_helper.from_array((rng.standard_normal((classes, cin)) * 0.1).astype(np.float32), "fc.weight"))
    inits.append(numpy_helper.from_array(np.zeros(classes, np.float32), "fc.bias"))
    nodes.append(helper.make_node("Gemm", [f"{f}_out", "fc.weight", "fc.bias"], ["logits"], name=fc, transB=1))
    graph = helper.make_graph(nodes, "resnet50_like",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="inspector-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
