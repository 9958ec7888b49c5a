"""Soak an `inspector serve` process: many concurrent clients mixing RPCs for N minutes.

Reports p50/p99 latency per RPC, status codes (RESOURCE_EXHAUSTED is back-pressure, not an
error), and the server's RSS over time with its growth after warm-up.

    python scripts/soak.py --minutes 3 --clients 8
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "clients" / "python")]

import grpc  # noqa: E402
import numpy as np  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def png(rng: random.Random, side: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    pixels = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def workload(client, models: dict[str, str], rng: random.Random):
    """One random call: (rpc name, thunk)."""
    cnn, res = models["small_cnn"], models["resnet"]
    x32 = np.random.default_rng(rng.randrange(1 << 30)).random((1, 3, 32, 32), dtype=np.float32)
    x64 = np.random.default_rng(rng.randrange(1 << 30)).random((2, 3, 64, 64), dtype=np.float32)
    choices = [
        ("Infer", lambda: client.infer(cnn, x32)),
        ("Infer", lambda: client.infer(res, x64)),
        ("Infer(png)", lambda: client.infer(cnn, png(rng, rng.choice([32, 100, 300])))),
        ("FeatureMaps", lambda: client.feature_maps(res, x64[:1], ["Relu"])),
        ("Weights", lambda: client.weights(cnn)),
        ("Gradients", lambda: client.gradients(cnn, x32)),
        ("Explain(gradcam)", lambda: client.explain(res, x64[:1], "gradcam")),
        ("ListModels", client.list_models),
        ("GetModelInfo", lambda: client.model_info(res)),
        ("ListMethods", client.methods),
    ]
    if "real" in models:
        x = np.random.default_rng(rng.randrange(1 << 30)).random((1, 3, 48, 192), dtype=np.float32)
        choices.append(("Infer(real)", lambda: client.infer(models["real"], x)))
    return rng.choice(choices)


def soak(minutes: float, clients: int, warmup_s: float, seed: int = 0) -> dict:
    from factory import resnet18_like, small_cnn
    from inspector_client import InspectorClient

    tmp = tempfile.TemporaryDirectory()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector.cli.main", "serve", "--port", "0", "--store",
         str(Path(tmp.name) / "store"), "--log-level", "WARNING", "--workers", "4",
         "--max-queued", "8", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path[:3])))
    address = proc.stdout.readline().split()[-1]
    with InspectorClient(address, timeout=120) as setup:
        models = {"small_cnn": setup.load_model(small_cnn().SerializeToString()).id,
                  "resnet": setup.load_model(resnet18_like(size=64).SerializeToString()).id}
        from inspector.models_zoo import model_path

        models["real"] = setup.load_model(model_path("ppocr-cls")).id
    latencies: dict[str, list[float]] = defaultdict(list)
    codes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rss: list[tuple[float, float]] = []
    lock = threading.Lock()
    started = time.monotonic()
    end = started + minutes * 60

    def client_loop(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        with InspectorClient(address, timeout=60) as client:
            while time.monotonic() < end:
                name, thunk = workload(client, models, rng)
                t0 = time.perf_counter()
                try:
                    thunk()
                    code = "OK"
                except grpc.RpcError as err:
                    code = err.code().name
                    if code == "RESOURCE_EXHAUSTED":
                        time.sleep(0.05 + rng.random() * 0.2)  # honour the back-pressure
                with lock:
                    latencies[name].append(time.perf_counter() - t0)
                    codes[name][code] += 1

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    while time.monotonic() < end:
        rss.append((round(time.monotonic() - started, 1), round(rss_mb(proc.pid), 1)))
        time.sleep(5)
    for t in threads:
        t.join(120)
    rss.append((round(time.monotonic() - started, 1), round(rss_mb(proc.pid), 1)))
    proc.terminate()
    proc.wait(30)
    tmp.cleanup()
    after_warmup = [m for t, m in rss if t >= warmup_s] or [rss[-1][1]]
    errors = {n: {c: k for c, k in cs.items() if c not in ("OK", "RESOURCE_EXHAUSTED")}
              for n, cs in codes.items()}
    return {
        "minutes": minutes, "clients": clients,
        "rpcs": {n: {"calls": len(v), "p50_ms": round(float(np.percentile(v, 50)) * 1000, 1),
                     "p99_ms": round(float(np.percentile(v, 99)) * 1000, 1),
                     "codes": dict(codes[n])} for n, v in sorted(latencies.items())},
        "errors": {n: e for n, e in errors.items() if e},
        "back_pressure": sum(cs.get("RESOURCE_EXHAUSTED", 0) for cs in codes.values()),
        "rss_mb": rss,
        "rss_peak_mb": max(m for _, m in rss),
        "rss_growth_after_warmup_pct": _growth(after_warmup),
    }


def _growth(samples: list[float]) -> float:
    """Median RSS of the last third vs the first third of the samples, in percent.

    RSS swings by hundreds of MB within seconds (transient result buffers), so single
    samples say little; thirds' medians show a trend.
    """
    third = max(1, len(samples) // 3)
    return round(100 * (float(np.median(samples[-third:])) / float(np.median(samples[:third])) - 1), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before RSS growth counts")
    args = parser.parse_args()
    report = soak(args.minutes, args.clients, args.warmup)
    print(json.dumps(report, indent=1))
    return 1 if report["errors"] or report["rss_growth_after_warmup_pct"] >= 10 else 0


if __name__ == "__main__":
    sys.exit(main())
