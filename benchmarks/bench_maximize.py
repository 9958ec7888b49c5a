"""Issue 5: activation-maximization speed on a real trained model (YOLOv8n from the nudenet wheel).

16 channels of a mid layer optimized as one batch at 128x128: steps per second, and one step vs
one plain forward pass of the same batch (target <= 3x per image in the batch).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np
from common import ROOT, THREADS, cpu_busy_fraction, interleaved, report

LAYER = "/model.6/cv2/act/Mul"
CHANNELS = list(range(16))
SIZE = 128


def main() -> int:
    from inspector.config import InspectorConfig
    from inspector.core import Inspector
    from inspector.models_zoo import model_path

    print(f"foreign CPU load before start: {cpu_busy_fraction():.0%}")
    core = Inspector(InspectorConfig(store_dir=tempfile.mkdtemp(), intra_op_threads=THREADS))
    core.upload([model_path("yolov8n-nudenet").read_bytes()], name="yolo", preprocess={"resize": [SIZE, SIZE]})
    access = core.open("yolo").access
    steps = 64
    stamps = [time.perf_counter()]
    gen = core.maximize_stream("yolo", LAYER, CHANNELS, steps=steps, params={"size": SIZE})
    while True:
        try:
            next(gen)
            stamps.append(time.perf_counter())
        except StopIteration as stop:
            result = stop.value
            break
    durations = np.diff(stamps)[4:]  # steady state: after the backward model is built
    per_step = float(np.median(durations))
    elapsed = float(durations.sum())
    x = np.random.default_rng(0).random((16, 3, SIZE, SIZE), dtype=np.float32)
    medians = interleaved({"plain forward, batch 16": lambda: access.forward(x)}, rounds=7)
    gain = result.gain
    medians["one maximization step, batch 16"] = per_step
    out = report(f"activation maximization, YOLOv8n {LAYER}, 16 channels, {SIZE}x{SIZE}", medians,
                 "plain forward, batch 16", {"one maximization step, batch 16": 3.0})
    print(f"  {len(durations) / elapsed:.1f} steps/s (steady state, {steps} steps); objective gain "
          f"min {min(gain):.1f}x, median {float(np.median(gain)):.1f}x")
    out["steps_per_second"] = len(durations) / elapsed
    out["gain"] = gain
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "maximize.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
