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
    assert Image.open(io.BytesIO((tmp_path / "o.png").read_bytes())).size == (32, 32)
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
