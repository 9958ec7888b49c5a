"""`inspector audit`: stream images to the server, build report.html/report.json from the stats.

Resumable: a checkpoint (the server's partial aggregate) is saved every few batches with the
number of images it covers; a rerun with the same arguments continues after them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from inspector_client.errors import describe_error

CHECKPOINT = "audit-checkpoint.json"
SAMPLE_CAMS = 8


def _inputs(files: list[str]) -> list:
    """Image paths, or the images of an .npy batch [N, ...] as separate tensors."""
    out: list = []
    for f in files:
        if f.endswith(".npy"):
            batch = np.load(f)
            out.extend(batch[i:i + 1] for i in range(len(batch)))
        else:
            out.append(f)
    return out


def _labels(path: str | None, count: int) -> list[int] | None:
    if path is None:
        return None
    labels = [int(v) for v in Path(path).read_text().split()]
    if len(labels) != count:
        raise SystemExit(f"{path} has {len(labels)} labels for {count} images; give one per image")
    return labels


def run_audit(args, client, files: list[str]) -> None:
    from inspector_client.progress import ProgressBar

    from inspector.audit.report import write_report

    items = _inputs(files)
    if not items:
        raise SystemExit("no images found in " + " ".join(args.images))
    labels = _labels(args.labels, len(items))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / CHECKPOINT
    model_id = client.model_info(args.model).id  # a checkpoint is only valid for the same model bytes
    done, state = 0, None
    if saved.exists():
        checkpoint = json.loads(saved.read_text())
        if checkpoint.get("images") == len(items) and checkpoint.get("model") == model_id:
            done, state = checkpoint["done"], json.dumps(checkpoint["state"]).encode()
            print(f"resuming after {done} of {len(items)} images", file=sys.stderr)
    batch = args.batch_size

    with ProgressBar(len(items), stream=sys.stderr, label="audit ") as bar:
        def progress(p) -> None:
            bar.update(done + p.step)
            if "state" in p.previews:  # the server's partial aggregate covers done + p.step images
                tmp = saved.with_suffix(".tmp")
                tmp.write_text(json.dumps({"model": model_id, "images": len(items), "done": done + p.step,
                                           "state": json.loads(p.previews["state"])}))
                tmp.replace(saved)

        audit = client.audit(args.model, items[done:], layers=args.layers, batch_size=batch,
                             labels=None if labels is None else labels[done:], on_progress=progress,
                             resume_state=state, checkpoint_every=max(1, 64 // batch))
    pictures = _pictures(client, args.model, items, labels, audit)
    paths = write_report(audit.report, out, pictures)
    saved.unlink(missing_ok=True)
    print(f"wrote {paths['html']} and {paths['json']}")


def _pictures(client, model: str, items: list, labels: list[int] | None, audit: dict) -> dict[str, bytes]:
    """Grad-CAM overlays of a sample (grouped correct / wrong when labels exist) and one feature grid."""
    pictures: dict[str, bytes] = {}
    step = max(1, len(items) // SAMPLE_CAMS)
    for i in range(0, len(items), step)[:SAMPLE_CAMS]:
        try:
            exp = client.explain(model, items[i], method="gradcam", score_after=False)  # the report shows Grad-CAM
        except Exception as exc:  # a model Grad-CAM cannot explain still gets its report
            print(f"no Grad-CAM overlays: {describe_error(exc)}", file=sys.stderr)
            break
        group = ""
        if labels is not None and exp.target:
            predicted = int(exp.target[0].rsplit("[", 1)[1].rstrip("]"))
            group = "correct: " if predicted == labels[i] else f"wrong (label {labels[i]}): "
        name = items[i] if isinstance(items[i], str) else f"image {i}"
        pictures[f"{group}Grad-CAM {exp.target[0] if exp.target else ''} on {Path(str(name)).name}"] = \
            exp.overlay_png[0]
    first = next(iter(audit["layers"]), None)
    if first is not None:
        pngs = client.render_feature_maps(model, items[0], [first], top_k=16)
        pictures.update({f"feature maps of {k} (image 0)": v for k, v in pngs.items()})
    return dict(sorted(pictures.items(), key=lambda kv: not kv[0].startswith("correct")))
