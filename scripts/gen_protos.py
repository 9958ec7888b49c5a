"""Generate the Python stubs of protos/ into the packages.

Run after editing a .proto: `python scripts/gen_protos.py`. tests/test_protos.py fails when
the committed stubs drift from the .proto files. Imports are made package-relative so the
server package and the thin client package each carry their own copy of inspector/v1.

protos/kserve (the Open Inference Protocol, package `inference`) goes into inspector/kserve
only, next to its servicer. Its descriptors are built in a pool of their own rather than the
process-wide default one: tritonclient registers the same `inference.*` names from its own
grpc_service.proto, and two files defining one symbol cannot share a pool, so the server and
tritonclient could not be imported into one process otherwise.

The pinned grpcio-tools (the test extra) writes gencode that asks for protobuf >= its own
version at run time (`ValidateProtobufRuntimeVersion`); it is kept old enough that the stubs
load on every protobuf the project supports (pyproject.toml).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
TARGETS = [ROOT / "inspector" / "v1", ROOT / "clients" / "python" / "inspector_client" / "v1"]
KSERVE_TARGET = ROOT / "inspector" / "kserve"
KSERVE_HEADER = "# ruff: noqa\n"  # generated: the linter's rules are not its rules


def _protoc() -> dict[str, dict[str, str]]:
    """{proto package folder ("inspector/v1", "kserve"): {file name: content}}, imports made relative."""
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={tmp}",
                f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *protos]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out: dict[str, dict[str, str]] = {}
        for folder in ("inspector/v1", "kserve"):
            package = folder.replace("/", r"\.")
            files = out.setdefault(folder, {})
            for path in sorted(Path(tmp, folder).glob("*.py*")):
                text = path.read_text()
                text = re.sub(rf"^from {package} import (\w+)", r"from . import \1", text, flags=re.M)
                files[path.name] = text
    return out


def generate() -> dict[str, str]:
    """The inspector/v1 stubs: {file name: content}."""
    return _protoc()["inspector/v1"]


def generate_kserve() -> dict[str, str]:
    """The Open Inference Protocol stubs for inspector/kserve, in their own descriptor pool."""
    out = {}
    for name, text in _protoc()["kserve"].items():
        if name.endswith("_pb2.py"):
            text, n = re.subn(r"_descriptor_pool\.Default\(\)\.AddSerializedFile",
                              "_descriptor_pool.DescriptorPool().AddSerializedFile", text)
            if n != 1:
                raise SystemExit(f"{name}: the generated code no longer adds its file to the default pool once")
        out[name] = KSERVE_HEADER + text
    return out


def main() -> int:
    files = generate()
    for target in TARGETS:
        target.mkdir(parents=True, exist_ok=True)
        (target / "__init__.py").write_text('"""Generated from protos/inspector/v1 by scripts/gen_protos.py."""\n')
        for name, text in files.items():
            (target / name).write_text(text)
    kserve = generate_kserve()
    KSERVE_TARGET.mkdir(parents=True, exist_ok=True)
    for name, text in kserve.items():
        (KSERVE_TARGET / name).write_text(text)
    print(f"wrote {len(files)} files into {len(TARGETS)} packages and {len(kserve)} into {KSERVE_TARGET.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
