"""Run the capability matrix (tests/zoo/zoo_matrix.py) against a server and print it.

Starts a server in-process (like tests/conftest.py) with a fresh store in a temporary folder, loads
every fixture of tests/fixtures/zoo, runs each capability on each fixture and prints the matrix
(fixture x capability: ok / refused: reason / FAILED: error) and "N/M cells ok" (a cell is ok when it
passes or is the expected refusal listed in the test module).

    .venv/bin/python scripts/zoo_report.py [--only resnet_op17,vit] [--capabilities infer,gradients] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "zoo"))

import zoo_matrix as zm  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated fixture names (default: all)")
    ap.add_argument("--capabilities", default="", help="comma-separated capabilities (default: all)")
    ap.add_argument("--representative", action="store_true", help="one fixture per variant")
    ap.add_argument("--real", action="store_true",
                    help="the real PyPI models of tests/zoo (zoo_matrix.REAL) instead of the fixtures")
    ap.add_argument("--json", type=Path, help="also write the cells as JSON here")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)

    from inspector_client import InspectorClient

    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    entries = zm.real_entries() if a.real else zm.fixtures()
    names = [n for n in a.only.split(",") if n] or (zm.representative() if a.representative else
                                                     [e["name"] for e in entries])
    caps = [c for c in a.capabilities.split(",") if c] or list(zm.CAPABILITIES)
    cells: dict[str, dict[str, str]] = {}
    ok = total = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "models").mkdir()
        config = InspectorConfig(store_dir=root / "store", model_roots=(root / "models",),
                                 intra_op_threads=a.threads)
        server = start_server(config, port=0)
        server.model_root = root / "models"
        try:
            with InspectorClient(server.address, timeout=300) as client:
                loaded = zm.load_all(client, server, names, entries)
                for name in names:
                    row = cells.setdefault(name, {})
                    for cap in caps:
                        total += 1
                        t = time.monotonic()
                        try:
                            zm.run_cell(client, loaded, name, cap)
                            known = zm.KNOWN_FAILURES.get((name, cap))
                            row[cap] = "ok" if known is None else f"ok (listed as known failure: {known})"
                            ok += 1
                        except grpc.RpcError as err:
                            wrong = zm.check_refusal(err, name, cap)
                            if wrong is None:
                                row[cap] = f"refused: {zm.EXPECTED_REFUSALS[(name, cap)][2]}"
                                ok += 1
                            else:
                                row[cap] = f"FAILED: {wrong}"
                        except Exception as err:  # a wrong value or a client-side error
                            first = next((ln for ln in str(err).splitlines() if ln.strip()), "")
                            row[cap] = f"FAILED: {type(err).__name__}: {first}"
                        if row[cap].startswith("FAILED") and (name, cap) in zm.KNOWN_FAILURES:
                            row[cap] = f"FAILED (known failure, xfail in the test): {row[cap][8:]}"
                        print(f"{name:22s} {cap:22s} {time.monotonic() - t:6.1f}s  {row[cap]}", flush=True)
        finally:
            server.stop(grace=1.0)
    print()
    width = max(len(n) for n in names)
    print(" " * width + "  " + " ".join(f"{c[:12]:>12s}" for c in caps))
    for name in names:
        marks = []
        for c in caps:
            v = cells[name][c]
            marks.append("ok" if v.startswith("ok") else "refused" if v.startswith("refused") else
                         "known-FAIL" if v.startswith("FAILED (known") else "FAILED")
        print(f"{name:{width}s}  " + " ".join(f"{m:>12s}" for m in marks))
    bad = [(n, c, v) for n in names for c, v in cells[n].items() if not v.startswith("ok")]
    if bad:
        print("\nrefused (expected) or failed:")
        for n, c, v in bad:
            print(f"  {n} / {c}: {v}")
    print(f"\n{ok}/{total} cells ok ({time.monotonic() - t0:.0f} s)")
    if a.json:
        a.json.write_text(json.dumps(cells, indent=1) + "\n")
    return 0 if ok == total else 1


if __name__ == "__main__":
    sys.exit(main())
