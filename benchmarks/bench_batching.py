"""A fixed-batch-1 export (torch's default) given 32 images: split into runs of 1 by the access
layer vs 32 single runs by hand, and the same export freed; ratios side by side in one run.

    .venv/bin/python benchmarks/bench_batching.py [--rounds 5]

Target (issue "Any exported model"): split runs cost at most the single runs + 10 %.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    from factory import resnet18_like

    from inspector.runtime.access import OrtModelAccess
    from inspector.runtime.sessions import SessionCache

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--images", type=int, default=32)
    args = p.parse_args()
    model = resnet18_like(size=96, classes=10)  # declared batch: 1
    x = np.random.default_rng(0).standard_normal((args.images, 3, 96, 96)).astype(np.float32)
    split = OrtModelAccess(model, sessions=SessionCache(intra_op_threads=1), free_batch=False)
    freed = OrtModelAccess(model, sessions=SessionCache(intra_op_threads=1))
    for access in (split, freed):  # sessions built, the freeing check done
        access.forward(x[:2])
    singles = best(lambda: [split.forward(x[i:i + 1]) for i in range(len(x))], args.rounds)
    chunked = best(lambda: split.forward(x), args.rounds)
    whole = best(lambda: freed.forward(x), args.rounds)
    print(f"{args.images} images, ResNet-18-shaped 96x96, batch-1 export, 1 thread, best of {args.rounds}")
    print(f"single runs by hand : {singles * 1000:8.1f} ms")
    print(f"split by the access : {chunked * 1000:8.1f} ms   {chunked / singles:.2f}x the single runs")
    print(f"freed (one run)     : {whole * 1000:8.1f} ms   {whole / singles:.2f}x the single runs "
          f"(freed: {freed.batch_freed})")


if __name__ == "__main__":
    main()
