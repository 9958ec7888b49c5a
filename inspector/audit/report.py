"""Write an audit as report.json and a self-contained report.html (plots embedded as data URIs).

report.json contract (fields may be added, never removed):
{"model": str, "images": N,
 "layers": {TENSOR: {"op_type", "shape", "channels": [{"index", "mean", "std", "min", "max",
            "zero_fraction", "flags": ["dead"|"rarely_active"|"saturated"|"range_outlier"]}, ...]}},
 "weights": {INITIALIZER: {"layer": NODE, "filters": [{"index", "l2_norm",
             "flags": ["near_zero"|"duplicate"]}, ...]}}}
Statistics of channels that saw no finite value are null.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path

from inspector.errors import InvalidArgument

MAX_ROWS = 500
_STYLE = """body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}td.l{text-align:left}
img{max-width:100%}.g{display:flex;flex-wrap:wrap;gap:8px}.g figure{margin:0;font-size:11px}
.g img{max-width:260px}"""


def _uri(data: bytes) -> str:
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return "" if v is None else str(v)


def _table(title: str, header: list[str], rows: list[list[object]]) -> str:
    if not rows:
        return f"<h2>{html.escape(title)}</h2><p>None.</p>"
    shown = rows[:MAX_ROWS]
    cells = "".join("<tr>" + "".join(
        f"<td{' class=l' if j < 2 else ''}>{html.escape(_fmt(v))}</td>" for j, v in enumerate(r)) + "</tr>"
        for r in shown)
    more = f"<p>{len(rows) - MAX_ROWS} more rows in report.json.</p>" if len(rows) > MAX_ROWS else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<h2>{html.escape(title)} ({len(rows)})</h2><table><tr>{head}</tr>{cells}</table>{more}"


def _gallery(images: Mapping[str, bytes]) -> str:
    """Extra images grouped by the part of their name before '/' (e.g. correct/..., wrong/...)."""
    groups: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in images.items():
        group, _, label = name.rpartition("/")
        groups.setdefault(group or "images", []).append((label, data))
    return "".join(
        f"<h2>{html.escape(group)}</h2><div class=g>" + "".join(
            f'<figure><img src="{_uri(d)}" alt="{html.escape(n)}"><figcaption>{html.escape(n)}'
            "</figcaption></figure>" for n, d in items) + "</div>" for group, items in groups.items())


def _tables(audit: Mapping) -> str:
    channels = [[layer, c["index"], c["flags"], c.get("mean"), c.get("min"), c.get("max"),
                 c.get("zero_fraction"), c.get("active_fraction"), c.get("saturation_fraction")]
                for layer, entry in audit["layers"].items() for c in entry["channels"] if c["flags"]]
    filters = [[name, w["layer"], c["index"], c["flags"], c["l2_norm"], c.get("duplicate_of")]
               for name, w in audit["weights"].items() for c in w["filters"] if c["flags"]]
    bn = [[node, b["scale"], c["index"], c["flags"], c["scale"], c["variance"]]
          for node, b in (audit.get("batchnorm") or {}).items() for c in b["channels"] if c["flags"]]
    out = _table("Flagged channels", ["tensor", "channel", "flags", "mean", "min", "max", "zero fraction",
                                      "active fraction", "saturation fraction"], channels)
    out += _table("Flagged filters", ["initializer", "layer", "filter", "flags", "L2 norm", "duplicate of"],
                  filters)
    out += _table("BatchNormalization anomalies", ["node", "scale", "channel", "flags", "scale value",
                                                   "variance"], bn)
    spread = [[name, w["layer"], w["range_spread"], w["sparsity"]] for name, w in audit["weights"].items()]
    return out + _table("Weight ranges and sparsity", ["initializer", "layer", "max/median filter max|w|",
                                                        "sparsity"], spread)


def _behaviour(behaviour: Mapping | None) -> str:
    if not behaviour:
        return ""
    out = _table("Predicted classes", ["class", "images"], list(behaviour["predicted_histogram"].items()))
    if "accuracy" in behaviour:
        out += f"<p>Accuracy: {behaviour['accuracy']:.4f} on {behaviour['labelled']} labelled images.</p>"
        out += _table("Top confusions", ["true", "predicted", "count"],
                      [[c["true"], c["predicted"], c["count"]] for c in behaviour["top_confusions"]])
    return out


def render_html(audit: Mapping, images: Mapping[str, bytes] | None = None) -> str:
    """The report page: summary, plots, extra images, then tables of everything flagged."""
    from inspector.audit import plots  # matplotlib: loaded by the report, not by every audit worker

    figures = [("Activation ranges", plots.activation_ranges(audit["layers"])),
               ("Flagged channels per layer", plots.flag_counts(audit["layers"])),
               ("Weight norms", plots.weight_norms(audit["weights"]))]
    findings = [[group.replace("_", " "), flag, count]
                for group, counts in audit.get("summary", {}).items() for flag, count in counts.items()]
    limits = ", ".join(f"{k} {v:g}" for k, v in (audit.get("thresholds") or {}).items())
    skipped = ", ".join(audit.get("skipped_tensors") or {})
    body = (f"<h1>Audit of {html.escape(str(audit['model']))}</h1><p>{audit['images']} images, "
            f"{len(audit['layers'])} tensors, {len(audit['weights'])} weight tensors. "
            f"Thresholds: {html.escape(limits)}.</p>"
            + (f"<p>Not per-image maps, left out: {html.escape(skipped)}.</p>" if skipped else "")
            + _table("Findings", ["what", "flag", "count"], findings)
            + "".join(f'<h2>{t}</h2><img src="{_uri(png)}" alt="{t}">' for t, png in figures)
            + _gallery(images or {}) + _behaviour(audit.get("behaviour")) + _tables(audit))
    return (f"<!DOCTYPE html><html><head><meta charset=utf-8><title>Audit: {html.escape(str(audit['model']))}"
            f"</title><style>{_STYLE}</style></head><body>{body}</body></html>")


def write_report(audit: Mapping, out_dir: Path, images: Mapping[str, bytes] | None = None) -> dict[str, Path]:
    """Write report.json and report.html into out_dir (created if needed); return their paths."""
    for key in ("model", "images", "layers", "weights"):
        if key not in audit:
            raise InvalidArgument(f"The audit has no {key!r} field; pass the dict AuditRun.result() returns.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "html": out_dir / "report.html"}
    paths["json"].write_text(json.dumps(audit, indent=1, allow_nan=False))
    paths["html"].write_text(render_html(audit, images), encoding="utf-8")
    return paths
