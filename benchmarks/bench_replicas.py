"""Infer calls per second from 4 client threads through 1 replica vs 2 (round_robin), same run.

    .venv/bin/python benchmarks/bench_replicas.py [--seconds 10] [--threads 1]

Each replica is a real server with its own store holding the same model (a shared store is
tested in tests/store); the client balances per call over "host:p1,host:p2". On a machine with
fewer idle cores than replicas x threads the ratio measures contention, not scaling.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def rate(target: str, x: np.ndarray, seconds: float, clients: int) -> float:
    from inspector_client import InspectorClient

    done, stop = [0] * clients, time.monotonic() + seconds

    def work(i: int) -> None:
        with InspectorClient(target, timeout=60, shared_memory=False) as c:
            while time.monotonic() < stop:
                c.infer("cnn", x)
                done[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds


def main() -> None:
    from factory import resnet18_like

    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads per replica")
    p.add_argument("--clients", type=int, default=4)
    args = p.parse_args()
    data = resnet18_like(size=96, classes=10).SerializeToString()
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        replicas = [start_server(InspectorConfig(store_dir=Path(tmp) / f"s{i}", vetting=False,
                                                 intra_op_threads=args.threads), port=0) for i in range(2)]
        try:
            from inspector_client import InspectorClient

            for r in replicas:
                with InspectorClient(r.address, timeout=60) as c:
                    c.load_model(data, name="cnn")
                    c.infer("cnn", x)  # warm
            one = rate(replicas[0].address, x, args.seconds, args.clients)
            two = rate(",".join(r.address for r in replicas), x, args.seconds, args.clients)
        finally:
            for r in replicas:
                r.stop(0)
    print(f"{args.clients} clients, Infer 1x3x96x96 ResNet-18-shaped, {args.threads} ORT thread(s) per replica")
    print(f"1 replica : {one:7.1f} calls/s")
    print(f"2 replicas: {two:7.1f} calls/s   ratio {two / one:.2f}x")


if __name__ == "__main__":
    main()
