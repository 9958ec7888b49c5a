"""Both packages build with a plain pip, and the thin client carries only what it needs."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _wheel(source: Path, out: Path) -> zipfile.ZipFile:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                   check=True, capture_output=True)
    return zipfile.ZipFile(next(out.glob("*.whl")))


def test_client_wheel_is_thin_and_has_its_stubs(tmp_path):
    names = _wheel(ROOT / "clients" / "python", tmp_path).namelist()
    assert "inspector_client/v1/inspector_pb2.py" in names and "inspector_client/client.py" in names
    assert not any(n.startswith("inspector/") for n in names)
    meta = next(n for n in names if n.endswith("METADATA"))
    requires = [line for line in _wheel_text(tmp_path, meta).splitlines() if line.startswith("Requires-Dist")]
    assert all(r.split()[1].split(">")[0].split("<")[0].split("=")[0] in ("grpcio", "protobuf", "numpy", "pillow")
               for r in requires), requires


def test_server_wheel_ships_the_client_and_the_stubs(tmp_path):
    names = _wheel(ROOT, tmp_path).namelist()
    for expected in ("inspector/v1/inspector_pb2_grpc.py", "inspector/core.py",
                     "inspector_client/v1/inspector_pb2.py", "inspector/graph/autodiff/__init__.py"):
        assert expected in names, expected
    assert not any(n.startswith("tests/") for n in names)


def _wheel_text(folder: Path, member: str) -> str:
    with zipfile.ZipFile(next(folder.glob("*.whl"))) as z:
        return z.read(member).decode()
