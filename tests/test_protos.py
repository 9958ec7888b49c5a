"""The committed stubs must equal what grpcio-tools generates from the .proto files now."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _gen():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def test_generated_stubs_match_protos():
    gen = _gen()
    expected = gen.generate()
    assert set(expected) == {"inspector_pb2.py", "inspector_pb2.pyi", "inspector_pb2_grpc.py"}
    for target in gen.TARGETS:
        for name, text in expected.items():
            committed = (target / name).read_text()
            assert committed == text, f"{target / name} drifted: run python scripts/gen_protos.py"


def test_kserve_stubs_match_protos():
    gen = _gen()
    expected = gen.generate_kserve()
    assert set(expected) == {"grpc_service_pb2.py", "grpc_service_pb2.pyi", "grpc_service_pb2_grpc.py"}
    for name, text in expected.items():
        committed = (gen.KSERVE_TARGET / name).read_text()
        assert committed == text, f"{gen.KSERVE_TARGET / name} drifted: run python scripts/gen_protos.py"


def test_stubs_load_on_every_supported_protobuf():
    """The gencode asks for a protobuf runtime no newer than the oldest that pyproject allows."""
    import re

    floor = re.search(r'"protobuf>=([\d.]+),<(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert floor, "pyproject.toml pins protobuf as >=X.Y.Z,<N"
    lowest = tuple(int(p) for p in floor.group(1).split("."))
    for path in [*(t / "inspector_pb2.py" for t in _gen().TARGETS), _gen().KSERVE_TARGET / "grpc_service_pb2.py"]:
        m = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),",
                      path.read_text())
        assert m, f"{path} has no runtime version check"
        assert tuple(int(g) for g in m.groups()) <= lowest, f"{path} needs a newer protobuf than pyproject allows"
