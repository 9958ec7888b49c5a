"""Shared benchmark helpers: interleaved timing rounds, medians, a CPU-quietness note."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREADS = int(os.environ.get("BENCH_THREADS", 2))  # onnxruntime intra-op threads (and torch's)
sys.path.insert(0, str(ROOT / "tests"))  # the model factory


def cpu_busy_fraction(seconds: float = 0.5) -> float:
    """Share of all CPUs used by anything during a short window (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def interleaved(cases: dict[str, Callable[[], object]], rounds: int = 15, warmup: int = 2) -> dict[str, float]:
    """Median seconds per case, each round running every case once (fair under drifting load)."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def report(title: str, medians: dict[str, float], base: str, targets: dict[str, float] | None = None) -> dict:
    print(f"\n== {title} (median seconds; ratio to {base!r}; threads={THREADS})")
    out = {}
    for name, t in medians.items():
        ratio = t / medians[base]
        target = (targets or {}).get(name)
        mark = "" if target is None else (f"  target <= {target}x: " + ("met" if ratio <= target else "MISSED"))
        print(f"  {name:48s} {t * 1000:9.1f} ms  {ratio:6.2f}x{mark}")
        out[name] = {"seconds": t, "ratio": ratio, "target": target}
    return out
