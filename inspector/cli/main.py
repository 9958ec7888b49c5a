"""`inspector` command line: serve, manage models, and inspect them through a server."""

from __future__ import annotations

import argparse
import os
import sys

from inspector.cli import client_commands, serve


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("INSPECTOR_SERVER", "127.0.0.1:50051"),
                   help="HOST:PORT of the server (default 127.0.0.1:50051)")
    p.add_argument("--token", default=os.environ.get("INSPECTOR_AUTH_TOKEN"),
                   help="bearer token (default: $INSPECTOR_AUTH_TOKEN)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=None, help="deadline of each call in seconds")
    p.add_argument("--tls-ca", default=os.environ.get("INSPECTOR_TLS_CA"),
                   help="use TLS, trusting this PEM CA (default: $INSPECTOR_TLS_CA)")
    p.add_argument("--tls-cert", default=os.environ.get("INSPECTOR_TLS_CERT"),
                   help="mutual TLS: this PEM client certificate (default: $INSPECTOR_TLS_CERT)")
    p.add_argument("--tls-key", default=os.environ.get("INSPECTOR_TLS_KEY"),
                   help="mutual TLS: the PEM key of --tls-cert (default: $INSPECTOR_TLS_KEY)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)

    models = sub.add_parser("models", help="load, list, show and remove models")
    msub = models.add_subparsers(dest="models_command", required=True)
    p = msub.add_parser("load", help="upload a local .onnx file (or --server-path: read on the server)")
    p.add_argument("path", nargs="?")
    p.add_argument("--server-path", help="a path under the server's --model-root")
    p.add_argument("--name")
    p.add_argument("--preprocess", help='JSON spec, e.g. \'{"resize": 256, "crop": [224, 224]}\'')
    p.add_argument("--providers", help="comma-separated preference, e.g. cuda,cpu")
    for name, help_ in (("list", "list stored models"), ("show", "a model's inputs, outputs and layers"),
                        ("rm", "delete a stored model")):
        q = msub.add_parser(name, help=help_)
        if name != "list":
            q.add_argument("model")
        _client_options(q)
    _client_options(p)

    p = sub.add_parser("infer", help="run a model on an image and print its top outputs")
    p.add_argument("model")
    p.add_argument("image")
    p.add_argument("--top", type=int, default=5)
    _client_options(p)

    p = sub.add_parser("features", help="feature maps of chosen layers for one image")
    p.add_argument("model")
    p.add_argument("image")
    p.add_argument("--layer", action="append", help="tensor/node name, op type or 'all' (repeatable)")
    p.add_argument("--out", default="features")
    p.add_argument("--format", choices=("png", "npy"), default="png")
    p.add_argument("--cmap", default="viridis")
    p.add_argument("--top-k", type=int)
    _client_options(p)

    p = sub.add_parser("weights", help="conv/gemm weights: filter grids or .npy files")
    p.add_argument("model")
    p.add_argument("--layer", action="append")
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=("png", "npy", "histogram"), default="png")
    p.add_argument("--mode", default="auto", choices=("auto", "rgb", "mean", "channels"))
    _client_options(p)

    p = sub.add_parser("gradients", help="gradients of a target with respect to tensors, as .npy")
    p.add_argument("model")
    p.add_argument("image")
    p.add_argument("--wrt", action="append")
    p.add_argument("--target", type=int)
    p.add_argument("--policy", default="standard", choices=("standard", "guided_backprop", "deconvnet"))
    p.add_argument("--out", default="gradients")
    _client_options(p)

    p = sub.add_parser("explain", help="an attribution map (CAM, saliency, IG, ...) as an overlay")
    p.add_argument("model")
    p.add_argument("image")
    p.add_argument("--method", default="gradcam")
    p.add_argument("--target", type=int)
    p.add_argument("--layer", action="append")
    p.add_argument("--out", default="overlay.png")
    p.add_argument("--npy", help="also save the heatmap [N,H,W] as .npy")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method parameter, JSON value (repeatable), e.g. --param steps=64")
    p.add_argument("--metrics", help="comma-separated faithfulness metrics to compute")
    _client_options(p)

    p = sub.add_parser("methods", help="list attribution methods and their parameters")
    _client_options(p)

    p = sub.add_parser("maximize", help="activation maximization of channels of a layer")
    p.add_argument("model")
    p.add_argument("--layer", required=True)
    p.add_argument("--channels", default="0-7", help="e.g. 0-15 or 1,5,9")
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--objective", default="channel")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="maximize.png")
    _client_options(p)

    p = sub.add_parser("audit", help="activation and weight health over many images, as HTML")
    p.add_argument("model")
    p.add_argument("images", nargs="+", help="folders, globs, image files or an .npy batch")
    p.add_argument("--out", required=True)
    p.add_argument("--layers", action="append")
    p.add_argument("--labels", help="a file with one integer label per image, in sorted path order")
    p.add_argument("--batch-size", type=int, default=8)
    _client_options(p)

    p = sub.add_parser("demo", help="start a server, inspect a real CNN on a photo, write index.html")
    p.add_argument("--out", default="demo-out")
    p.add_argument("--server", help="use this running server instead of starting one")
    p.add_argument("--steps", type=int, default=96, help="activation-maximization steps")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve.run(args)
    if args.command == "demo":
        from inspector.demo import run_demo

        return run_demo(args.out, server=args.server, steps=args.steps)
    return client_commands.dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
