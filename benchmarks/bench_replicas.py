"""Infer calls per second from 4 client processes through 1 replica vs 2 (round_robin), same run.

    .venv/bin/python benchmarks/bench_replicas.py [--seconds 10] [--size 96] [--rounds 2] [--no-pin]

Each replica is a real `inspector serve` process over one shared store folder (shared:/path, the
model uploaded once), with 1 onnxruntime thread and --workers 1 (RPCs run at once: its CPUs).
Measured here with the server's default of 4: calls that run together on one CPU finish together,
and closed-loop clients balanced per call then move from replica to replica as one convoy, leaving
the other idle (2 replicas 1.03x one; 1.66x with --workers 1; 1.74x with two clients pinned to
each replica, no balancing at all). A replica stands for one machine's worth of CPU:
with --pin (the default) replica i runs on CPU i only (sched_setaffinity), so one replica cannot
borrow the second core through concurrent calls; the clients are separate processes, unpinned,
balancing per call over "127.0.0.1:p1,127.0.0.1:p2". Rounds alternate 1 and 2 replicas (medians).

Printed beside the ratio: the machine's own ceiling, the same model run in 1 and in 2 plain
processes (onnxruntime only, pinned the same way, no gRPC), so a ratio below 1.8x can be told
apart from a machine that cannot give it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(store: str, cpu: int | None, workers: int) -> tuple[subprocess.Popen, str, int]:
    port, metrics = _free_port(), _free_port()
    command = [sys.executable, "-m", "inspector.cli.main", "serve", "--port", str(port), "--store", store,
               "--threads", "1", "--workers", str(workers), "--no-vetting", "--log-level", "WARNING", "--metrics-port", str(metrics)]
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = subprocess.Popen(command, preexec_fn=pin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, f"127.0.0.1:{port}", metrics


def _served(metrics_port: int) -> tuple[float, float]:
    """(Infer calls answered OK, CPU seconds used) of one replica, from its Prometheus endpoint."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    calls = cpu = 0.0
    for line in text.splitlines():
        if line.startswith('inspector_rpc_total{') and 'rpc="Infer"' in line and 'code="OK"' in line:
            calls = float(line.rsplit(" ", 1)[1])
        elif line.startswith("process_cpu_seconds_total"):
            cpu = float(line.rsplit(" ", 1)[1])
    return calls, cpu


def _wait_serving(address: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"replica {address} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with grpc.insecure_channel(address) as channel:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"replica {address} not serving after {timeout} s")


def _client(target: str, size: int, start_at: float, stop_at: float, out) -> None:
    from inspector_client import InspectorClient

    x = np.random.default_rng(os.getpid()).standard_normal((1, 3, size, size)).astype(np.float32)
    done = 0
    with InspectorClient(target, timeout=60, shared_memory=False) as client:
        client.infer("cnn", x)  # connected (to every replica of the target) before the clock
        while time.time() < start_at:
            time.sleep(0.001)
        while time.time() < stop_at:
            client.infer("cnn", x)
            done += 1
    out.put(done)


def _per_second(work, jobs: list[tuple], seconds: float) -> float:
    """Runs per second of `work(*job, start_at, stop_at, out)` in one spawned process per job, all
    counting in one shared window that opens once every process is up (and connected)."""
    context = mp.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 4.0
    procs = [context.Process(target=work, args=(*job, start_at, start_at + seconds, out)) for job in jobs]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 120) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def rate(target: str, size: int, seconds: float, clients: int) -> float:
    """Infer calls per second from `clients` client processes."""
    return _per_second(_client, [(target, size)] * clients, seconds)


def _plain(model_path: str, size: int, cpu: int | None, start_at: float, stop_at: float, out) -> None:
    import onnxruntime as ort

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((1, 3, size, size))
            .astype(np.float32)}
    session.run(None, feed)
    while time.time() < start_at:
        time.sleep(0.001)
    done = 0
    while time.time() < stop_at:
        session.run(None, feed)
        done += 1
    out.put(done)


def plain_rate(model_path: str, size: int, seconds: float, processes: int, pin: bool) -> float:
    """Plain onnxruntime runs per second in `processes` processes (pinned like the replicas)."""
    return _per_second(_plain, [(model_path, size, i if pin else None) for i in range(processes)], seconds)


def main() -> None:
    from factory import resnet18_like
    from inspector_client import InspectorClient

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--size", type=int, default=96, help="input height and width (ResNet-18-shaped model)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workers", type=int, default=1,
                   help="RPCs a replica runs at once (inspector serve --workers): its CPUs; more let the "
                        "closed-loop clients of a round_robin channel move from replica to replica in convoys")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="let every replica use every CPU (on 2 cores one replica then already uses both)")
    args = p.parse_args()
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        sys.exit("--pin needs 2 CPUs")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "resnet18_like.onnx"
        model_path.write_bytes(resnet18_like(size=args.size, classes=10).SerializeToString())
        store = f"shared:{Path(tmp) / 'store'}"
        replicas = [_serve(store, i if args.pin else None, args.workers) for i in range(2)]
        try:
            for proc, address, _ in replicas:
                _wait_serving(address, proc)
            with InspectorClient(replicas[0][1], timeout=60) as c:
                c.load_model(model_path, name="cnn")  # once: the other replica reads the shared store
            for _, address, _ in replicas:
                with InspectorClient(address, timeout=60) as c:
                    c.infer("cnn", np.zeros((1, 3, args.size, args.size), np.float32))  # warm
            rows: dict[str, list[float]] = {"one": [], "two": [], "plain1": [], "plain2": []}
            shares: dict[str, list] = {"one": [], "two": []}
            for _ in range(args.rounds):
                for case, target in (("one", replicas[0][1]), ("two", ",".join(a for _, a, _ in replicas))):
                    before = [_served(m) for _, _, m in replicas]
                    rows[case].append(rate(target, args.size, args.seconds, args.clients))
                    after = [_served(m) for _, _, m in replicas]
                    shares[case].append([(int(a[0] - b[0]), round(a[1] - b[1], 1)) for a, b in zip(after, before, strict=True)])
                rows["plain1"].append(plain_rate(str(model_path), args.size, args.seconds, 1, args.pin))
                rows["plain2"].append(plain_rate(str(model_path), args.size, args.seconds, 2, args.pin))
        finally:
            for proc, _, _ in replicas:
                proc.terminate()
            for proc, _, _ in replicas:
                proc.wait(30)
    m = {k: statistics.median(v) for k, v in rows.items()}
    print(f"\n== {args.clients} client processes, Infer 1x3x{args.size}x{args.size} ResNet-18-shaped, 1 ORT thread "
          f"and --workers {args.workers} per replica, {'one CPU per replica (pinned)' if args.pin else 'replicas unpinned'}; medians of "
          f"{args.rounds} rounds of {args.seconds:.0f} s")
    print(f"  1 replica : {m['one']:7.1f} calls/s   {rows['one']}")
    print(f"  2 replicas: {m['two']:7.1f} calls/s   {rows['two']}   ratio {m['two'] / m['one']:.2f}x "
          f"(goal >= 1.8x: {'met' if m['two'] / m['one'] >= 1.8 else 'MISSED'})")
    print(f"  (Infer calls answered, CPU seconds used) per replica in each window, clients' start-up included: "
          f"1 replica {shares['one']}, 2 replicas {shares['two']}")
    print(f"  ceiling, plain onnxruntime runs (no gRPC, no clients): 1 process {m['plain1']:.1f}/s, "
          f"2 processes {m['plain2']:.1f}/s, ratio {m['plain2'] / m['plain1']:.2f}x")
    print(f"  gRPC service vs plain runs: 1 replica {m['one'] / m['plain1']:.0%}, 2 replicas {m['two'] / m['plain2']:.0%}")


if __name__ == "__main__":
    main()
