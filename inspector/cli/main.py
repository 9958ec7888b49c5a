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


def arg(*names: str, **options) -> tuple[tuple[str, ...], dict]:
    return names, options


LAYERS = arg("--layer", action="append", help="tensor/node name, op type or 'all' (repeatable)")
PARAMS = arg("--param", action="append", default=[], metavar="KEY=VALUE",
             help="method parameter, JSON value (repeatable), e.g. --param steps=64")
MODEL = arg("model", help="model id, unique id prefix or name")
IMAGE = arg("image", help="an image file (or a .npy input tensor)")
TARGET = [arg("--target", help="class index, or several comma-separated (default: each image's top-1)"),
          arg("--target-tensor", help="explain this output or intermediate tensor instead of the first output"),
          arg("--target-index", help="element of the target tensor per image, e.g. 0,5 for row 0, column 5"),
          arg("--box", help="a region x1,y1,x2,y2 in the target tensor's pixels (N,C,H,W tensors)"),
          arg("--channel", type=int, help="a channel of the target tensor (N,C,H,W tensors)")]

# The client commands: name, help, arguments, handler in client_commands. Options left unset are
# None, which the server reads as its own default (never restated here).
COMMANDS = [
    ("infer", "run a model on an image and print its top outputs",
     [MODEL, IMAGE, arg("--top", type=int, default=5, help="how many outputs to print")], "infer"),
    ("features", "feature maps of chosen layers for one image",
     [MODEL, IMAGE, LAYERS, arg("--out", default="features", help="output folder"),
      arg("--format", choices=("png", "npy"), default="png", help="PNG channel grids or raw .npy tensors"),
      arg("--cmap", help="matplotlib colormap of the grids"),
      arg("--top-k", type=int, help="only the k channels with the largest mean activation")],
     "features"),
    ("weights", "conv/gemm weights: filter grids or .npy files",
     [MODEL, LAYERS, arg("--out", required=True, help="output folder"),
      arg("--format", choices=("png", "npy", "histogram"), default="png",
          help="filter grids (NAME.png), raw tensors (NAME.npy) or histograms (NAME.hist.png)"),
      arg("--mode", help="auto, rgb, mean or channels"), arg("--cmap", help="matplotlib colormap")], "weights"),
    ("gradients", "gradients of a target with respect to tensors, as .npy",
     [MODEL, IMAGE, arg("--wrt", action="append", help="tensor to differentiate with respect to (repeatable; "
                                                         "default: the input)"), *TARGET,
      arg("--policy", help="standard, guided_backprop or deconvnet"),
      arg("--out", default="gradients", help="output folder")],
     "gradients"),
    ("explain", "an attribution map (CAM, saliency, IG, ...) as an overlay",
     [MODEL, IMAGE, arg("--method", help="see `inspector methods`"), *TARGET,
      LAYERS, arg("--out", default="overlay.png", help="the overlay PNG"),
      arg("--npy", help="also save the heatmap [N,H,W] as .npy"),
      PARAMS, arg("--metrics", help="comma-separated faithfulness metrics to compute")], "explain"),
    ("methods", "list attribution methods and their parameters", [], "methods"),
    ("maximize", "activation maximization of channels of a layer",
     [MODEL, arg("--layer", help="default: the class scores for logit/probability objectives"),
      arg("--channels", default="0-7", help="e.g. 0-15 or 1,5,9"), arg("--steps", type=int, help="ascent steps"),
      arg("--objective", help="channel, neuron, layer, logit or probability"), PARAMS,
      arg("--out", default="maximize.png", help="the grid of images, one per channel")], "maximize"),
    ("audit", "activation and weight health over many images, as HTML",
     [MODEL, arg("images", nargs="+", help="folders, globs, image files or an .npy batch"),
      arg("--out", required=True, help="report folder"), arg("--layers", action="append",
                                                           help="layers to audit (default: the main ones)"),
      arg("--labels", help="a file with one integer label per image, in sorted path order"),
      arg("--batch-size", type=int, default=8, help="images per request"),
      arg("--engine", choices=("server", "ray"), default="server",
          help="server: through a running server; ray: on a Ray cluster, no server (MODEL is then a "
               "local .onnx file, or a model id/name in --store); needs inspector[ray]"),
      arg("--address", help="with --engine ray: the cluster, auto or ray://HOST:10001 (default: a new local one)"),
      arg("--workers", type=int, help="with --engine ray: audit workers (default: the cluster's CPUs less one)"),
      arg("--store", help="with --engine ray: a local model store folder that holds MODEL")], "audit"),
]
MODEL_COMMANDS = [
    ("load", "upload a local .onnx file (or --server-path: read on the server)",
     [arg("path", nargs="?", help="a local .onnx file"),
      arg("--server-path", help="a path under the server's --model-root"), arg("--name", help="a name to use"),
      arg("--preprocess", help='JSON spec, e.g. \'{"resize": 256, "crop": [224, 224]}\''),
      arg("--providers", help="comma-separated preference, e.g. cuda,cpu"),
      arg("--replace", action="store_true", help="move --name from the model that holds it now")], "models_load"),
    ("list", "list stored models", [], "models_list"),
    ("show", "a model's inputs, outputs and layers", [MODEL], "models_show"),
    ("rm", "delete a stored model", [MODEL], "models_rm"),
]


def _add(sub, table) -> None:
    for name, help_, arguments, handler in table:
        p = sub.add_parser(name, help=help_)
        for names, options in arguments:
            p.add_argument(*names, **options)
        _client_options(p)
        p.set_defaults(handler=handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)
    models = sub.add_parser("models", help="load, list, show and remove models")
    _add(models.add_subparsers(dest="models_command", required=True), MODEL_COMMANDS)
    _add(sub, COMMANDS)
    p = sub.add_parser("demo", help="start a server, inspect a real CNN on a photo, write index.html")
    p.add_argument("--out", default="demo-out", help="output folder (index.html and pictures)")
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
