"""The committed stubs must equal what grpcio-tools generates from the .proto files now."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_stubs_match_protos():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    expected = gen.generate()
    assert set(expected) == {"inspector_pb2.py", "inspector_pb2.pyi", "inspector_pb2_grpc.py"}
    for target in gen.TARGETS:
        for name, text in expected.items():
            committed = (target / name).read_text()
            assert committed == text, f"{target / name} drifted: run python scripts/gen_protos.py"
