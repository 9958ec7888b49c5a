"""Generate the Python stubs of protos/inspector/v1 into both packages.

Run after editing a .proto: `python scripts/gen_protos.py`. tests/test_protos.py fails when
the committed stubs drift from the .proto files. Imports are made package-relative so the
server package and the thin client package each carry their own copy.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
TARGETS = [ROOT / "inspector" / "v1", ROOT / "clients" / "python" / "inspector_client" / "v1"]


def generate() -> dict[str, str]:
    """Return {file name: content} of the generated stubs, imports made relative."""
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={tmp}",
                f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *protos]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out = {}
        for path in sorted(Path(tmp, "inspector", "v1").glob("*.py*")):
            text = path.read_text()
            text = re.sub(r"^from inspector\.v1 import (\w+)", r"from . import \1", text, flags=re.M)
            out[path.name] = text
    return out


def main() -> int:
    files = generate()
    for target in TARGETS:
        target.mkdir(parents=True, exist_ok=True)
        (target / "__init__.py").write_text('"""Generated from protos/inspector/v1 by scripts/gen_protos.py."""\n')
        for name, text in files.items():
            (target / name).write_text(text)
    print(f"wrote {len(files)} files into {len(TARGETS)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
