"""Longer fuzzing of an `inspector serve` process (vetting on) with the test suite's strategies.

The server runs in its own process, so a crash is seen (and counted, and the server restarted)
instead of taking the fuzzer down. Counts per family: cases, status codes, crashes, hangs
(the server stops answering health checks), undefined codes (UNKNOWN, INTERNAL, ...).

    python scripts/fuzz.py --cases 500 [--families models,requests,images]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "hardening"),
                str(ROOT / "clients" / "python")]

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402


class Target:
    """An `inspector serve` subprocess with two real models; restarted after a crash."""

    def __init__(self, store: Path) -> None:
        self.store, self.proc, self.crashes = store, None, 0
        self.start()

    def start(self) -> None:
        from factory import small_cnn
        from fuzz_cases import tiny_model
        from inspector_client import InspectorClient

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inspector.cli.main", "serve", "--port", "0", "--store", str(self.store),
             "--log-level", "ERROR", "--workers", "2", "--vet-timeout", "10", "--threads", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path[:4])))
        self.address = self.proc.stdout.readline().split()[-1]
        self.channel = grpc.insecure_channel(self.address)
        self.client = InspectorClient(self.address, timeout=30)
        self.ids = [self.client.load_model(m().SerializeToString()).id for m in (small_cnn, tiny_model)]

    def alive(self) -> bool:
        """Health answers within 5 s; otherwise the server is restarted and the case counted."""
        try:
            health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            return True
        except grpc.RpcError:
            self.crashes += self.proc.poll() is not None
            self.proc.kill()
            self.proc.wait()
            self.start()
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


def run_family(name: str, target: Target, cases: int) -> dict:
    from fuzz_cases import (
        DEFINED,
        call,
        image_bytes,
        mutated_models,
        random_requests,
        status_of,
        tiny_model,
    )

    codes: Counter[str] = Counter()
    failures: list[str] = []
    hangs = 0

    def record(code: str, what: str) -> None:
        nonlocal hangs
        codes[code] += 1
        if not target.alive():
            hangs += 1
            failures.append(f"server down after {what} ({code})")
        elif code not in DEFINED:
            failures.append(f"{what}: {code}")

    strategy = {"models": mutated_models(tiny_model().SerializeToString()),
                "requests": random_requests(["0" * 64]), "images": image_bytes()}[name]

    @settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def case(value) -> None:
        if name == "models":
            accepted: list[str] = []
            record(status_of(lambda: accepted.append(target.client.load_model(value).id)), "upload")
            if accepted and accepted[0] not in target.ids:
                target.client.unload_model(accepted[0])
        elif name == "requests":
            method, request = value
            if method.name != "UnloadModel":
                for message in request if isinstance(request, list) else [request]:
                    owner = getattr(message, "header", message)
                    if hasattr(owner, "model") and owner.model == "0" * 64:
                        owner.model = target.ids[0]
            record(call(target.channel, method, request, timeout=10), f"{method.name} {str(request)[:400]!r}")
        else:
            record(status_of(lambda: target.client.infer(target.ids[0], value)), "image")

    started = time.perf_counter()
    case()
    return {"cases": sum(codes.values()), "codes": dict(codes), "hangs": hangs,
            "undefined_or_down": len(failures), "examples": failures[:20],
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500, help="cases per family")
    parser.add_argument("--families", default="models,requests,images")
    args = parser.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        target = Target(Path(tmp) / "store")
        try:
            for family in args.families.split(","):
                report[family] = run_family(family, target, args.cases)
        finally:
            target.stop()
        report["crashes"] = target.crashes
    print(json.dumps(report, indent=2))
    return 1 if report["crashes"] or any(r["undefined_or_down"] for k, r in report.items()
                                         if isinstance(r, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
