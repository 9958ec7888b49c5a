"""Screenshots of the browser view for the docs: docs/ui-graph.png (the graph view), docs/ui-features.png
(a layer's feature grid, statistics and weights) and docs/ui-explain.png (the explain panel).

Uses the browser tests' setup (tests/browser/harness.py: the system Chromium through Playwright, a
real server on loopback ports). The model is the YOLOv8n detector that the nudenet wheel ships when it
is installed (as in `make demo`), else a ResNet-50-shaped synthetic graph.

    .venv/bin/python scripts/screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))

import harness  # noqa: E402

SAMPLE = ROOT / "inspector" / "http" / "static" / "sample.jpg"


def upload_model(api: httpx.Client) -> dict:
    """YOLOv8n (with the demo's layers and target) when installed, else the synthetic ResNet."""
    from inspector import errors
    from inspector.models_zoo import model_path, preprocess_spec

    try:
        path = model_path("yolov8n-nudenet")
    except errors.InspectorError as exc:
        print(f"YOLOv8n not available ({exc.message}); using the synthetic ResNet-50-shaped graph")
        r = api.post("/models", params={"name": "resnet50-like"}, content=harness.resnet50_like().SerializeToString())
        r.raise_for_status()
        info = r.json()
        return {"info": info, "feature_layer": "relu39", "conv_layer": "conv40", "method": "gradcam", "cam_layer": None, "target": None}
    from inspector.demo import CAM_LAYERS, FEATURE_LAYERS, top_detection

    r = api.post("/models", params={"name": "yolov8n", "preprocess": json.dumps(preprocess_spec("yolov8n-nudenet"))},
                 content=path.read_bytes())
    r.raise_for_status()
    info = r.json()
    out = api.post("/models/yolov8n/infer", json={"input": {"images": [base64.b64encode(SAMPLE.read_bytes()).decode()]}})
    out.raise_for_status()
    item = next(i for i in out.json()["items"] if i["group"] == "output")
    output = np.frombuffer(base64.b64decode(item["data"]), "<f4").reshape(item["shape"])
    cls, anchor, score, _ = top_detection(output)
    cam = next(layer for end, layer in CAM_LAYERS if anchor < end)
    node = next(layer["name"] for layer in info["layers"] if cam in (layer["name"], layer["outputs"][0]["name"]))
    feature = next(layer["name"] for layer in info["layers"]
                   if FEATURE_LAYERS[1] in (layer["name"], layer["outputs"][0]["name"]))
    print(f"top detection: class {cls}, anchor {anchor}, score {score:.3f}; CAM layer {node}")
    conv = next(layer["name"] for layer in info["layers"] if layer["name"] == "/model.0/conv/Conv")
    return {"info": info, "feature_layer": feature, "conv_layer": conv, "method": "layercam", "cam_layer": node,
            "target": {"tensor": info["outputs"][0]["name"], "index": [4 + cls, anchor]}}


def wait_stamp(page, sel: str, before: str | None = None) -> None:
    page.wait_for_function("([sel, before]) => { const e = document.querySelector(sel); "
                           "return e && e.dataset.rendered && e.dataset.rendered !== before; }",
                           arg=[sel, before], timeout=90_000)


def side(page, path: Path) -> None:
    """The side panel, the viewport made as tall as its content."""
    height = page.evaluate("document.querySelector('.side').scrollHeight + 60")
    page.set_viewport_size({"width": 1600, "height": max(1000, height)})
    page.wait_for_timeout(300)
    page.locator(".side").screenshot(path=str(path))
    page.set_viewport_size({"width": 1600, "height": 1000})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs (default docs/)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server = harness.start_inspector(Path(tempfile.mkdtemp(prefix="inspector-shots-")) / "store")
    try:
        with httpx.Client(base_url=server.http.url + "/api/v1", timeout=300) as api:
            model = upload_model(api)
        info = model["info"]
        with harness.sync_playwright() as playwright:
            browser = harness.launch(playwright)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(90_000)
            page.goto(f"{server.http.url}/app/#/model/{info['id']}")
            page.wait_for_selector("body[data-graph-ready]")
            print(f"graph of {len(info['layers'])} layers: {page.evaluate('window.inspectorTimings.graph')}")
            page.wait_for_selector("#image-thumb:not([hidden])")

            # the graph view: a layer picked in the table (the graph centres on it), its feature grid
            page.locator("#layers tbody tr", has_text=model["feature_layer"]).first.click()
            wait_stamp(page, "#fm-grid")
            page.fill("#search", "cv2/act")
            page.wait_for_timeout(300)
            page.locator("#layers tbody tr", has_text=model["feature_layer"]).first.click()
            page.wait_for_timeout(300)
            page.screenshot(path=str(out / "ui-graph.png"))
            page.fill("#search", "")

            # a conv layer's feature grid with its colour bar, channel statistics and weights
            stamp = page.get_attribute("#fm-grid", "data-rendered")
            page.locator("#layers tbody tr", has_text=model["conv_layer"]).first.click()
            wait_stamp(page, "#fm-grid", stamp)
            page.wait_for_selector("#weights img.histogram")
            page.wait_for_timeout(300)
            side(page, out / "ui-features.png")

            # the explain panel: LayerCAM of the top detection (Grad-CAM of a class) over the photo
            if model["cam_layer"]:
                page.locator("#layers tbody tr", has_text=model["cam_layer"]).first.click()
            page.click(".tabs button[data-tab=explain]")
            page.select_option("#ex-method", model["method"])
            if model["target"]:
                page.select_option("#ex-target", "custom")
                page.fill("#ex-target-json", json.dumps(model["target"]))
                page.select_option("#ex-layer", index=1)
            page.click("#ex-run")
            wait_stamp(page, "#ex-figure")
            page.fill("#ex-opacity", "0.45")
            page.dispatch_event("#ex-opacity", "input")
            page.click("#ex-eval")
            page.wait_for_selector("#ex-metrics table")
            side(page, out / "ui-explain.png")
            browser.close()
    finally:
        server.stop(1.0)
    for name in ("ui-graph.png", "ui-features.png", "ui-explain.png"):
        print(f"wrote {out / name} ({(out / name).stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
