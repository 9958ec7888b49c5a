"""The capability matrix: every capability on every fixture of the zoo, through a real server.

Fixtures: tests/fixtures/zoo (narrow torchvision networks and their variants, built by
scripts/build_fixtures.py). The checks (zoo_matrix.py) compare VALUES with independent references:

- infer: equals plain onnxruntime on the same file;
- feature_maps: three default layers equal onnxruntime on the model with those tensors as outputs;
- weights: equal the initializers (float16 ones come back as float32, quantized ones dequantized
  with the graph's own scale and zero point);
- gradients: of sum(seed * output) for a random seed, against central finite differences of the
  float32 model (float16: its float32 upcast; uint8: the same graph with a float input) along two
  random directions, within 5 % of |g| (10 % for float16). Quantized models (QDQ, QOperator,
  dynamic): the straight-through gradient is checked for finiteness, non-zero and cosine > 0.5 with
  the gradient of the float network they were quantized from;
- integrated_gradients: completeness, |convergence_delta| small relative to the score change;
- gradcam / scorecam / eigencam: finite, at the input's size, not constant;
- audit: per-channel mean and max of a layer over 4 images equal numpy on the exposed tensors.

The detector (SSDlite: TopK + NMS inside the graph, outputs without a batch axis) is a function
that jumps wherever the kept boxes change, so its gradients are checked for shape, finiteness and
non-zero only, and integrated gradients for a finite delta (no completeness along the path).

Every cell passes, or is an EXPECTED_REFUSALS entry (status code + message fragment + reason), or
a KNOWN_FAILURES entry (a service bug, xfail(strict=True) so the fix turns it red). Nothing is
skipped. The whole matrix runs in ~1.5 minutes on 2 cores, so no cell is marked slow.
"""

import hashlib
import json

import grpc
import numpy as np
import onnx
import pytest
import zoo_matrix as zm

MANIFEST = zm.manifest()
NAMES = [e["name"] for e in MANIFEST["fixtures"]]
CELLS = [(f, c) for f in NAMES for c in zm.CAPABILITIES]


@pytest.fixture(scope="module")
def zoo(server):
    from inspector_client import InspectorClient

    with InspectorClient(server.address, timeout=300) as c:
        return zm.load_all(c, server)


def _params():
    out = []
    for f, c in CELLS:
        marks = []
        if (f, c) in zm.KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, raises=(AssertionError, grpc.RpcError),
                                           reason=zm.KNOWN_FAILURES[(f, c)]))
        out.append(pytest.param(f, c, marks=marks, id=f"{f}-{c}"))
    return out


@pytest.mark.parametrize(("fixture", "capability"), _params())
def test_cell(client, zoo, fixture, capability):
    refusal = zm.EXPECTED_REFUSALS.get((fixture, capability))
    if refusal is None:
        zm.run_known(client, zoo, fixture, capability)
        return
    code, fragment, _reason = refusal
    with pytest.raises(grpc.RpcError) as err:
        zm.run_cell(client, zoo, fixture, capability)
    assert err.value.code() == code, err.value.details()
    assert fragment in err.value.details()


def test_tables_name_real_cells_and_give_reasons():
    for table in (zm.EXPECTED_REFUSALS, zm.KNOWN_FAILURES):
        for cell in table:
            assert cell in CELLS, f"{cell} is not a cell of the matrix"
    assert not set(zm.EXPECTED_REFUSALS) & set(zm.KNOWN_FAILURES)
    for code, fragment, reason in zm.EXPECTED_REFUSALS.values():
        assert code != grpc.StatusCode.INTERNAL and fragment and reason


def test_manifest_matches_the_files():
    total = 0
    for e in MANIFEST["fixtures"]:
        path = zm.ZOO / e["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == e["sha256"], e["name"]
        size = path.stat().st_size
        if e.get("data_file"):
            data = zm.ZOO / e["data_file"]
            assert hashlib.sha256(data.read_bytes()).hexdigest() == e["data_sha256"], e["name"]
            size += data.stat().st_size
        assert size == e["size_bytes"] and size <= 2.2 * 2**20, e["name"]
        total += size
        for k in ("family", "exporter", "opset", "variant", "inputs", "outputs"):
            assert e[k], (e["name"], k)
    assert total <= 40 * 2**20
    files = {p.name for p in zm.ZOO.iterdir()} - {"manifest.json"}
    listed = {e["file"] for e in MANIFEST["fixtures"]} | {e["data_file"] for e in MANIFEST["fixtures"] if e.get("data_file")}
    assert files == listed


@pytest.mark.parametrize("name", NAMES)
def test_fixture_has_the_fixed_batch_of_one_and_its_declared_input(name):
    e = next(e for e in MANIFEST["fixtures"] if e["name"] == name)
    model = onnx.load(str(zm.ZOO / e["file"]), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    assert [i.name for i in inputs] == [s["name"] for s in e["inputs"]]
    for vi, spec in zip(inputs, e["inputs"], strict=True):
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]
        assert dims == spec["shape"] and dims[0] == 1  # torch's default export: fixed batch 1
        assert np.dtype(onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)).name == spec["dtype"]


def test_manifest_is_json_with_provenance():
    text = (zm.ZOO / "manifest.json").read_text()
    data = json.loads(text)
    assert data["generator"] == "scripts/build_fixtures.py" and data["torch"] and data["seed"] == 0
