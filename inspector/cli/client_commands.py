"""The CLI commands that talk to a server through the bundled client."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import sys
from pathlib import Path

import grpc
import numpy as np


def _client(args):
    from inspector_client import InspectorClient

    return InspectorClient(args.server, token=args.token, timeout=args.timeout,
                           tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key)


def _emit(args, data, text: str) -> None:
    print(json.dumps(data, indent=2, default=_json_default) if args.json else text)


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def file_name(name: str) -> str:
    """A tensor, layer or method name as a file name ("/model.0/Conv" -> "model.0_Conv")."""
    name = name.replace("+", "plus")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_")


def _write_all(out: Path, items: dict, suffix: str) -> list[str]:
    """Each array as .npy or each PNG's bytes into out/, named after its key; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, value in items.items():
        path = out / f"{file_name(name)}{suffix}"
        if suffix == ".npy":
            np.save(path, value)
        else:
            path.write_bytes(value)
        written.append(str(path))
    return written


def _params(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param needs KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"error: {flag} takes comma-separated integers, got {text!r}") from None


def _target(args):
    """The client's target from --target/--target-tensor/--target-index/--box/--channel (None: top-1)."""
    spec: dict = {}
    if args.target_tensor:
        spec["tensor"] = args.target_tensor
    if args.target_index:
        spec["index"] = _ints(args.target_index, "--target-index")
    if args.target:
        classes = _ints(args.target, "--target")
        if not spec and len(classes) == 1:
            return classes[0]
        spec["index" if len(classes) == 1 and "index" not in spec else "classes"] = classes
    if args.box:
        box = _ints(args.box, "--box")
        if len(box) != 4:
            raise SystemExit(f"error: --box takes x1,y1,x2,y2, got {args.box!r}")
        x1, y1, x2, y2 = box
        spec["box"] = [y1, x1, y2, x2]  # the API's order: y0, x0, y1, x1
    if args.channel is not None:
        spec["channel"] = args.channel
    return spec or None


def _image(path: str):
    """An image file as its path (the client reads it), a .npy file as the input tensor."""
    if path.endswith(".npy"):
        return np.load(path)
    return path


def _channels(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        lo, sep, hi = part.partition("-")
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return out


def _describe(info) -> str:
    lines = [f"{info.id[:12]}  {info.name or '-'}  {info.size_bytes / 1e6:.1f} MB  {info.producer}"
             + (f"  (also: {', '.join(n for n in info.names if n != info.name)})" if len(info.names) > 1 else ""),
             "  inputs:  " + ", ".join(f"{t.name} {t.dtype} {list(t.shape or [])}" for t in info.inputs),
             "  outputs: " + ", ".join(f"{t.name} {t.dtype} {list(t.shape or [])}" for t in info.outputs),
             "  differentiable: " + ("yes" if info.differentiable else
                                     "no, blocked by " + ", ".join(info.blocking_ops))]
    for layer in info.layers:
        shape = layer.outputs[0].shape if layer.outputs else None
        lines.append(f"  {layer.name:40s} {layer.op_type:20s} -> {layer.outputs[0].name if layer.outputs else ''}"
                     f" {list(shape) if shape is not None else '?'}"
                     + (f"  params={layer.parameter_count}" if layer.parameter_count else ""))
    return "\n".join(lines)


def models_load(args, c) -> None:
    preprocess = json.loads(args.preprocess) if args.preprocess else None
    providers = [p for p in (args.providers or "").split(",") if p]
    info = c.load_model(args.path, server_path=args.server_path, name=args.name,
                        preprocess=preprocess, providers=providers, replace=args.replace)
    _emit(args, {"id": info.id, "name": info.name}, f"loaded {info.id} ({info.name or 'no name'})")


def models_list(args, c) -> None:
    models = c.list_models()
    _emit(args, [dataclasses.asdict(m) for m in models],
          "\n".join(f"{m.id[:12]}  {m.name or '-':20s} {m.size_bytes / 1e6:8.1f} MB  {m.producer}"
                    for m in models) or "no models")


def models_show(args, c) -> None:
    info = c.model_info(args.model)
    _emit(args, dataclasses.asdict(info), _describe(info))


def models_rm(args, c) -> None:
    removed = c.unload_model(args.model)
    _emit(args, {"removed": removed}, f"removed {removed}")


def infer(args, c) -> None:
    outputs = c.infer(args.model, _image(args.image))
    first = next(iter(outputs.values()))
    flat = first.reshape(first.shape[0], -1)[0]
    top = np.argsort(flat)[::-1][:args.top]
    _emit(args, {k: v.tolist() for k, v in outputs.items()}, "\n".join(f"{i}: {flat[i]:.4f}" for i in top))


def features(args, c) -> None:
    if args.format == "npy":
        written = _write_all(Path(args.out), c.feature_maps(args.model, _image(args.image), args.layer), ".npy")
    else:
        pngs = c.render_feature_maps(args.model, _image(args.image), args.layer, cmap=args.cmap, top_k=args.top_k)
        written = _write_all(Path(args.out), pngs, ".png")
    _emit(args, {"files": written}, f"wrote {len(written)} files to {args.out}")


def weights(args, c) -> None:
    if args.format == "npy":
        written = _write_all(Path(args.out), c.weights(args.model, args.layer), ".npy")
    else:
        pngs = c.render_weights(args.model, args.layer, mode=args.mode, cmap=args.cmap,
                                histogram=args.format == "histogram")
        written = _write_all(Path(args.out), pngs, ".hist.png" if args.format == "histogram" else ".png")
    _emit(args, {"files": written}, f"wrote {len(written)} files to {args.out}")


def gradients(args, c) -> None:
    grads = c.gradients(args.model, _image(args.image), args.wrt, target=_target(args), policy=args.policy)
    written = _write_all(Path(args.out), grads, ".npy")
    _emit(args, {k: list(v.shape) for k, v in grads.items()}, f"wrote {len(written)} files to {args.out}")


def explain(args, c) -> None:
    exp = c.explain(args.model, _image(args.image), method=args.method, target=_target(args),
                    layer=args.layer, **_params(args.param))
    Path(args.out).write_bytes(exp.overlay_png[0])
    if args.npy:
        np.save(args.npy, exp.heatmap)
    data = {"method": exp.method, "layer": exp.layers, "target": exp.targets, "score": exp.score,
            "score_after": exp.score_after, "overlay": args.out, "params": exp.params}
    if args.metrics:
        metrics = c.evaluate(args.model, _image(args.image), exp, metrics=args.metrics.split(","))
        data["metrics"] = {k: v.tolist() for k, v in metrics.items()}
    for warning in exp.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _emit(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))


def methods(args, c) -> None:
    found = c.methods()
    _emit(args, found, "\n".join(
        f"{m['name']:22s} {'gradient' if m['uses_gradients'] else 'forward '}  {m['doc']}\n"
        f"{'':22s} params: {m['defaults']}" for m in found))


def maximize(args, c) -> None:
    import io

    from inspector_client.progress import ProgressBar
    from PIL import Image

    from inspector.imaging.render import tile_images

    channels = _channels(args.channels)
    with ProgressBar(args.steps or 0, stream=sys.stderr) as bar:
        result = c.maximize(args.model, args.layer, channels, steps=args.steps, objective=args.objective,
                            on_progress=bar.update, **_params(args.param))
    images = [np.asarray(Image.open(io.BytesIO(p)).convert("RGB")) for p in result.pngs]
    Path(args.out).write_bytes(tile_images(images, labels=[f"{result.layer}:{ch}" for ch in channels]))
    _emit(args, {"out": args.out, "final_objective": result.final_objective.tolist(), "gain": result.gain},
          f"wrote {args.out}; objective gain per channel: " + ", ".join(f"{g:.1f}x" for g in result.gain))


def audit(args, c) -> None:
    from inspector.cli.audit import run_audit

    run_audit(args, c, _image_files(args.images))


def _image_files(patterns: list[str]) -> list[str]:
    suffixes = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
    files: list[str] = []
    for pattern in patterns:
        p = Path(pattern)
        if p.is_dir():
            files.extend(sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in suffixes))
        elif any(ch in pattern for ch in "*?["):
            files.extend(sorted(glob.glob(pattern, recursive=True)))
        else:
            files.append(pattern)
    return files


def dispatch(args: argparse.Namespace) -> int:
    """Run the handler the command table names (cli.main.COMMANDS) with a connected client."""
    if getattr(args, "engine", None) == "ray":  # `audit --engine ray`: on a Ray cluster, no server
        from inspector.audit.ray_engine import run_ray_audit

        return run_ray_audit(args)
    try:
        with _client(args) as c:
            globals()[args.handler](args, c)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNAVAILABLE:
            print(f"error: no inspector server answers at {args.server} ({err.details()}); start one with "
                  "`inspector serve`, or pass --server HOST:PORT", file=sys.stderr)
            return 1
        print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    except OSError as err:  # a local file the command was given
        where = f" {err.filename}" if err.filename else ""
        print(f"error: cannot read{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except ValueError as err:  # the client refused an argument before sending it
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
