"""The CLI against a server started with `inspector serve` in its own process."""

import io
import json
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
from factory import small_cnn
from PIL import Image

from inspector.cli.main import main


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    proc = subprocess.Popen([sys.executable, "-m", "inspector.cli.main", "serve", "--port", "0",
                             "--store", str(root / "store"), "--model-root", str(root),
                             "--threads", "1"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    port = int(re.search(r":(\d+)$", line.strip()).group(1))
    model = root / "cnn.onnx"
    onnx.save(small_cnn(seed=41), model)
    image = root / "photo.png"
    rgb = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(image)
    yield f"127.0.0.1:{port}", root, model, image
    proc.terminate()
    assert proc.wait(timeout=30) == 0  # SIGTERM is a graceful shutdown


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_commands(served, capsys):
    server, root, model, _ = served
    code, out, _ = run(capsys, "models", "load", str(model), "--name", "cnn", "--server", server, "--json",
                       "--preprocess", '{"resize": [32, 32]}')
    assert code == 0 and json.loads(out)["name"] == "cnn"
    code, out, _ = run(capsys, "models", "list", "--server", server, "--json")
    assert [m["name"] for m in json.loads(out)] == ["cnn"]
    code, out, _ = run(capsys, "models", "show", "cnn", "--server", server)
    assert "conv1" in out and "differentiable: yes" in out
    code, out, _ = run(capsys, "models", "load", "--server-path", str(model), "--name", "cnn2", "--server", server)
    assert code == 0 and "loaded" in out
    code, out, err = run(capsys, "models", "show", "nope", "--server", server)
    assert code == 1 and "NOT_FOUND" in err


def test_features_weights_explain_gradients(served, capsys, tmp_path):
    server, _, _, image = served
    run(capsys, "models", "load", str(served[2]), "--name", "cnn", "--server", server,
        "--preprocess", '{"resize": [32, 32]}')
    code, _, _ = run(capsys, "features", "cnn", str(image), "--layer", "relu1_out", "--layer", "conv4",
                     "--out", str(tmp_path / "f"), "--server", server)
    assert code == 0 and Image.open(tmp_path / "f" / "relu1_out.png").size[0] > 32
    code, _, _ = run(capsys, "features", "cnn", str(image), "--layer", "relu1_out", "--format", "npy",
                     "--out", str(tmp_path / "n"), "--server", server)
    arr = np.load(tmp_path / "n" / "relu1_out.npy")
    assert arr.shape == (1, 8, 32, 32) and (arr >= 0).all()
    code, _, _ = run(capsys, "weights", "cnn", "--layer", "conv1", "--format", "npy", "--out", str(tmp_path / "w"),
                     "--server", server)
    w = {i.name: onnx.numpy_helper.to_array(i) for i in small_cnn(seed=41).graph.initializer}
    np.testing.assert_array_equal(np.load(tmp_path / "w" / "conv1.weight.npy"), w["conv1.weight"])
    code, out, _ = run(capsys, "explain", "cnn", str(image), "--method", "gradcam", "--target", "3",
                       "--out", str(tmp_path / "o.png"), "--npy", str(tmp_path / "h.npy"), "--json",
                       "--metrics", "deletion", "--server", server)
    data = json.loads(out)
    assert code == 0 and data["target"] == ["logits[3]"] and "deletion" in data["metrics"]
    assert np.load(tmp_path / "h.npy").shape == (1, 32, 32)
    assert Image.open(io.BytesIO((tmp_path / "o.png").read_bytes())).size == Image.open(image).size  # the photo's own size
    code, out, _ = run(capsys, "explain", "cnn", str(image), "--method", "integrated_gradients",
                       "--param", "steps=8", "--out", str(tmp_path / "ig.png"), "--json", "--server", server)
    assert code == 0 and json.loads(out)["params"]["steps"] == 8
    code, _, _ = run(capsys, "gradients", "cnn", str(image), "--wrt", "relu4_out", "--out", str(tmp_path / "g"),
                     "--server", server)
    assert np.load(tmp_path / "g" / "relu4_out.npy").shape == (1, 16, 8, 8)
    code, out, _ = run(capsys, "methods", "--server", server)
    assert "gradcam" in out and "integrated_gradients" in out
    code, _, err = run(capsys, "explain", "cnn", str(image), "--method", "nope", "--out", str(tmp_path / "x.png"),
                       "--server", server)
    assert code == 1 and "INVALID_ARGUMENT" in err and "nope" in err


def test_maximize_draws_a_grid(served, capsys, tmp_path):
    server = served[0]
    run(capsys, "models", "load", str(served[2]), "--name", "cnn", "--server", server)
    code, out, err = run(capsys, "maximize", "cnn", "--layer", "relu2_out", "--channels", "0-3", "--steps", "24",
                         "--out", str(tmp_path / "grid.png"), "--server", server, "--json")
    assert code == 0, err
    assert "24/24" in err  # the progress bar reached the end
    assert len(json.loads(out)["final_objective"]) == 4
    assert Image.open(tmp_path / "grid.png").size[0] > 64


def test_targets_friendly_errors_and_outputs(served, capsys, tmp_path):
    """Targets as in the client, a message (not a traceback) for a missing file or a down server,
    histograms beside the filter grids, and no progress frames in a pipe."""
    server, _, model, image = served
    run(capsys, "models", "load", str(model), "--name", "cnn", "--server", server,
        "--preprocess", '{"resize": [32, 32]}')
    code, out, _ = run(capsys, "explain", "cnn", str(image), "--server", server, "--json", "--method", "gradcam",
                       "--target-tensor", "relu2_out", "--box", "2,4,10,12", "--channel", "3",
                       "--out", str(tmp_path / "box.png"))
    assert code == 0 and json.loads(out)["target"] == ["relu2_out[c=3, y=4:12, x=2:10]"]
    code, out, _ = run(capsys, "explain", "cnn", str(image), "--server", server, "--json", "--target", "1,4",
                       "--method", "saliency", "--out", str(tmp_path / "two.png"))
    assert code == 0 and json.loads(out)["target"] == ["logits[1+4]"]
    code, _, err = run(capsys, "explain", "cnn", str(tmp_path / "missing.png"), "--server", server)
    assert code == 2 and "cannot read" in err and "missing.png" in err and "Traceback" not in err
    code, _, err = run(capsys, "infer", "cnn", str(image), "--server", "127.0.0.1:9", "--timeout", "5")
    assert code == 1 and "no inspector server answers at 127.0.0.1:9" in err
    for fmt in ("png", "histogram"):
        assert run(capsys, "weights", "cnn", "--layer", "conv1", "--out", str(tmp_path / "w"), "--format", fmt,
                   "--server", server)[0] == 0
    names = sorted(p.name for p in (tmp_path / "w").iterdir())
    assert "conv1.weight.png" in names and "conv1.weight.hist.png" in names
    code, _, err = run(capsys, "maximize", "cnn", "--layer", "relu2", "--channels", "0-1", "--steps", "3",
                       "--param", "size=32", "--out", str(tmp_path / "mx.png"), "--server", server)
    assert code == 0 and "\r" not in err  # stderr is not a terminal here


def test_python_dash_m_inspector_and_help_on_every_flag():
    out = subprocess.run([sys.executable, "-m", "inspector", "explain", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--target-tensor" in out.stdout
    from inspector.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest not in ("help",) and action.option_strings:
                assert action.help, f"inspector {name} {action.option_strings[0]} has no help"


def test_audit_engine_ray_routes_to_the_ray_engine_without_a_server(monkeypatch, tmp_path):
    """`inspector audit MODEL SOURCE --engine ray` parses into what run_ray_audit reads and is
    dispatched to it without connecting to any server (the engine itself: tests/audit/test_ray_audit.py)."""
    import inspector.audit.ray_engine as engine
    from inspector.cli import client_commands
    from inspector.cli.main import build_parser

    args = build_parser().parse_args(["audit", "m.onnx", str(tmp_path), "--engine", "ray", "--workers", "2",
                                      "--address", "auto", "--out", str(tmp_path / "o"), "--server", "127.0.0.1:9"])
    seen = []
    monkeypatch.setattr(engine, "run_ray_audit", lambda a: seen.append(a) or 0)
    assert client_commands.dispatch(args) == 0 and seen == [args]
    assert (args.engine, args.workers, args.address, args.store) == ("ray", 2, "auto", None)
