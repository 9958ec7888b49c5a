"""`inspector demo`: a real trained CNN on a real photograph, through a real server.

Starts a server on a free loopback port (or uses --server), uploads the YOLOv8n detector that
the `nudenet` wheel ships, runs it on the Grace Hopper photo that matplotlib ships, and writes
feature-map grids, first-layer filters, CAM overlays of the top detection, maximized channels
and an index.html showing them.
"""

from __future__ import annotations

import html
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from inspector_client.errors import describe_error

from inspector.cli.client_commands import file_name

MODEL = "yolov8n-nudenet"
FEATURE_LAYERS = ["/model.0/act/Mul", "/model.2/cv2/act/Mul", "/model.4/cv2/act/Mul",
                  "/model.6/cv2/act/Mul", "/model.9/cv2/act/Mul"]
# the neck outputs that feed the detection heads at strides 8, 16 and 32 (40x40, 20x20, 10x10 anchors)
CAM_LAYERS = ((1600, "/model.15/cv2/act/Mul"), (2000, "/model.18/cv2/act/Mul"), (2100, "/model.21/cv2/act/Mul"))
CAM_METHODS = ["gradcam", "gradcam++", "eigencam", "layercam", "saliency"]
MAX_LAYER = "/model.4/cv2/act/Mul"


def photo_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def labels() -> list[str]:
    """Class names from the nudenet package source (read, never imported)."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("nudenet")
    text = (Path(next(iter(spec.submodule_search_locations))) / "nudenet.py").read_text()
    block = text.split("__labels = [", 1)[1].split("]", 1)[0]
    return re.findall(r'"([A-Z_]+)"', block)


def top_detection(output: np.ndarray) -> tuple[int, int, float, np.ndarray]:
    """(class, anchor, score, box cx,cy,w,h) of the best-scoring anchor of a YOLOv8 output [1, 4+K, A]."""
    scores = output[0, 4:]
    cls, anchor = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(cls), int(anchor), float(scores[cls, anchor]), output[0, :4, anchor]


def run_demo(out: str | Path, server: str | None = None, steps: int = 96) -> int:
    from inspector_client import InspectorClient

    from inspector.models_zoo import model_path, preprocess_spec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    running = None
    if server is None:
        from inspector.config import InspectorConfig
        from inspector.service.server import start_server

        store = Path(tempfile.mkdtemp(prefix="inspector-demo-store-"))
        running = start_server(InspectorConfig(store_dir=store), port=0)
        server = running.address
        print(f"started a server on {server} (store {store})")
    try:
        with InspectorClient(server, timeout=600) as client:
            page = _inspect(client, model_path(MODEL), preprocess_spec(MODEL), out, steps)
    finally:
        if running is not None:
            running.stop(grace=1.0)
    (out / "index.html").write_text(page)
    print(f"wrote {out / 'index.html'}")
    return 0


def _inspect(client, model_file: Path, spec: dict, out: Path, steps: int) -> str:
    photo = photo_path().read_bytes()
    (out / "photo.jpg").write_bytes(photo)
    t0 = time.perf_counter()
    info = client.load_model(model_file, name="yolov8n", preprocess=spec)
    sections = [f"<p>Model <b>{html.escape(model_file.name)}</b> ({info.producer}, "
                f"{len(info.layers)} nodes, id <code>{info.id[:12]}</code>), differentiable: "
                f"{'yes' if info.differentiable else 'no: ' + html.escape(', '.join(info.blocking_ops))}."
                "</p>"]
    outputs = client.infer("yolov8n", photo)
    cls, anchor, score, box = top_detection(outputs[info.outputs[0].name])
    names = labels()
    label = names[cls] if cls < len(names) else str(cls)
    sections.append(f"<p>Top detection: <b>{label}</b> score {score:.3f}, box (cx, cy, w, h) = "
                    f"{np.round(box, 1).tolist()} in 320x320 input pixels.</p>")
    print(f"top detection: {label} {score:.3f}")

    figures = []
    pngs = client.render_feature_maps("yolov8n", photo, FEATURE_LAYERS, top_k=16)
    for name, png in pngs.items():
        path = f"features_{file_name(name)}.png"
        (out / path).write_bytes(png)
        figures.append((path, f"{name}: top 16 channels by mean activation"))
    sections.append(_gallery("Feature maps", figures))

    first_conv = next(layer for layer in info.layers if layer.op_type == "Conv")
    filters = client.render_weights("yolov8n", [first_conv.name], mode="rgb")
    figures = []
    for name, png in filters.items():
        path = f"filters_{file_name(name)}.png"
        (out / path).write_bytes(png)
        figures.append((path, f"{name}: first-layer filters as colour images"))
    sections.append(_gallery("Filters", figures))

    figures, report = [], {}
    cam_layer = next(layer for end, layer in CAM_LAYERS if anchor < end)  # the head that detected it
    target = {"tensor": info.outputs[0].name, "index": [4 + cls, anchor]}
    for method in CAM_METHODS:
        try:
            layer = None if method == "saliency" else cam_layer
            exp = client.explain("yolov8n", photo, method=method, target=target, layer=layer)
        except Exception as exc:  # show what failed instead of stopping the demo
            figures.append(("", f"{method}: failed: {describe_error(exc)}"))
            continue
        path = f"cam_{file_name(method)}.png"
        (out / path).write_bytes(exp.overlay_png[0])
        figures.append((path, f"{method} for {label} at {', '.join(exp.layers) or 'input'}"))
        report[method] = {"score": exp.score, "layer": exp.layers}
    sections.append(_gallery(f"Where the detector looked for {label}", figures))

    figures = []
    try:
        result = client.maximize("yolov8n", MAX_LAYER, list(range(8)), steps=steps, size=128)
        from PIL import Image

        from inspector.imaging.render import tile_images

        images = [np.asarray(Image.open(io.BytesIO(p)).convert("RGB")) for p in result.pngs]
        (out / "maximize.png").write_bytes(tile_images(images, labels=[f"ch {i}" for i in range(8)]))
        gains = result.gain
        figures.append(("maximize.png", f"{MAX_LAYER}, channels 0-7, {steps} steps; objective gain "
                        + ", ".join(f"{g:.0f}x" for g in gains)))
    except Exception as exc:
        figures.append(("", f"maximization failed: {describe_error(exc)}"))
    sections.append(_gallery("What channels respond to (activation maximization)", figures))
    (out / "summary.json").write_text(json.dumps({"label": label, "score": score, "cams": report,
                                                  "seconds": time.perf_counter() - t0}, indent=2))
    return _page(sections)


def _gallery(title: str, figures: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<figure><img src="{html.escape(p)}"><figcaption>{html.escape(c)}</figcaption></figure>'
        if p else f"<p class=err>{html.escape(c)}</p>" for p, c in figures)
    return f"<h2>{html.escape(title)}</h2><div class=gallery>{items}</div>"


def _page(sections: list[str]) -> str:
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
             ".gallery{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;max-width:380px}"
             "img{max-width:380px;image-rendering:pixelated;border:1px solid #ccc}"
             "figcaption{font-size:12px}.err{color:#a00}")
    return (f"<!doctype html><meta charset=utf-8><title>inspector demo</title><style>{style}</style>"
            "<h1>inspector demo: YOLOv8n on a photograph</h1>"
            '<img src="photo.jpg" style="max-width:240px">' + "".join(sections))
