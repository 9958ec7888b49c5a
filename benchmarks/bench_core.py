"""Issue 2 and 3 ratios on a ResNet-18-sized model at 224x224, all measured in one run.

- rewrite overhead: exposing every Conv output vs plain inference (target <= 1.2x)
- service overhead: all Conv outputs over gRPC on loopback vs the same in-process (<= 1.3x), with
  results streamed in chunks and through shared memory (the default for local clients)
- warm vs cold: the second identical request builds nothing (session-cache counters)
- gradients: top-1 logit w.r.t. the last block (Grad-CAM's need, <= 1.2x) and w.r.t. the input
  (saliency, <= 2.8x) vs a plain forward pass; backward-model build time for a ResNet-50-sized model
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np
from common import ROOT, THREADS, cpu_busy_fraction, interleaved, report


def main() -> int:
    from factory import resnet18_like
    from inspector_client import InspectorClient

    from inspector.config import InspectorConfig
    from inspector.core import InputData
    from inspector.graph.select import resolve_tensors
    from inspector.service.server import start_server

    print(f"foreign CPU load before start: {cpu_busy_fraction():.0%}")
    model = resnet18_like()
    store = tempfile.mkdtemp(prefix="bench-store-")
    config = InspectorConfig(store_dir=store, intra_op_threads=THREADS)
    server = start_server(config, port=0)
    core = server.inspector
    client = InspectorClient(server.address, timeout=600, shared_memory=False)
    shm_client = InspectorClient(server.address, timeout=600)  # local: shared memory by default
    info = client.load_model(model.SerializeToString(), name="r18")
    loaded = core.open("r18")
    access = loaded.access
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    convs = resolve_tensors(model, ["Conv"])
    last = "relu_out" if False else [n for n in resolve_tensors(model, ["Relu"])][-1]

    # warm vs cold: the first request builds the exposed session, the second must not
    before = core.sessions.stats()
    t0 = time.perf_counter()
    core.feature_maps("r18", InputData(tensor=x), convs)
    cold = time.perf_counter() - t0
    mid = core.sessions.stats()
    t0 = time.perf_counter()
    core.feature_maps("r18", InputData(tensor=x), convs)
    warm = time.perf_counter() - t0
    after = core.sessions.stats()
    print(f"\ncold request {cold * 1000:.0f} ms (session misses +{mid['misses'] - before['misses']}), "
          f"warm {warm * 1000:.0f} ms (misses +{after['misses'] - mid['misses']}, hits +{after['hits'] - mid['hits']})")

    seed = np.zeros((1, 1000), np.float32)
    seed[0, 7] = 1
    access.backward(x, "logits", seed, [last])  # build once, outside the timing
    access.backward(x, "logits", seed, [access.input_name])
    cases = {
        "plain forward": lambda: access.forward(x),
        "expose every Conv output (in-process)": lambda: access.forward_exposed(x, convs),
        "expose every Conv output (gRPC)": lambda: client.feature_maps("r18", x, ["Conv"]),
        "expose every Conv output (gRPC, shared memory)": lambda: shm_client.feature_maps("r18", x, ["Conv"]),
        "gradient wrt last block (Grad-CAM)": lambda: access.backward(x, "logits", seed, [last]),
        "gradient wrt input (saliency)": lambda: access.backward(x, "logits", seed, [access.input_name]),
    }
    medians = interleaved(cases, rounds=12)
    results = report("core ratios, ResNet-18-like 224x224, batch 1", medians, "plain forward", {
        "expose every Conv output (in-process)": 1.2, "gradient wrt last block (Grad-CAM)": 1.2,
        "gradient wrt input (saliency)": 2.8})
    in_process = medians["expose every Conv output (in-process)"]
    service = medians["expose every Conv output (gRPC)"] / in_process
    service_shm = medians["expose every Conv output (gRPC, shared memory)"] / in_process
    print(f"  service overhead gRPC / in-process: {service:.2f}x streamed, {service_shm:.2f}x shared memory "
          f"(target <= 1.3x; {server.shared_memory.bytes_sent / 1e6:.0f} MB went through shared memory)")

    from inspector.graph.autodiff import build_gradient_model

    r50 = resnet50_like()
    t0 = time.perf_counter()
    build_gradient_model(r50, "logits", ["input"])
    build = time.perf_counter() - t0
    print(f"  backward model build, ResNet-50-sized ({len(r50.graph.node)} nodes): {build:.2f} s (cached after)")

    client.load_model(r50.SerializeToString(), name="r50")
    x8 = np.random.default_rng(1).standard_normal((8, 3, 224, 224)).astype(np.float32)
    t0 = time.perf_counter()
    maps = client.feature_maps("r50", x8, ["all"])
    cold = time.perf_counter() - t0  # includes building the session that exposes every layer
    total = sum(m.nbytes for m in maps.values())
    del maps
    timings = {}
    for label, c in (("streamed", client), ("shared memory", shm_client)):
        t0 = time.perf_counter()
        c.feature_maps("r50", x8, ["all"])
        timings[label] = time.perf_counter() - t0
    print(f"  all 123 layers of the ResNet-50-sized model at batch 8 over gRPC: {total / 1e9:.2f} GB; "
          f"first request {cold:.1f} s, then " + ", ".join(
              f"{label} {t:.1f} s ({total / 1e9 / t:.2f} GB/s)" for label, t in timings.items()))
    results["resnet50_all_layers_batch8"] = {"bytes": total, "first_s": cold, **timings}
    client.close()
    shm_client.close()
    server.stop(0)
    results.update({"service_overhead": service, "service_overhead_shm": service_shm,
                    "cold_ms": cold * 1000, "warm_ms": warm * 1000,
                    "resnet50_backward_build_s": build, "model_id": info.id})
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "core.json").write_text(json.dumps(results, indent=2))
    return 0


def resnet50_like():
    """Bottleneck ResNet-50 layout (3-4-6-3 blocks, 25.5 M params) with random weights."""
    from factory import CNNBuilder

    b = CNNBuilder((1, 3, 224, 224), seed=0)
    x = b.maxpool(b.relu(b.conv(b.input_name, 64, k=7, stride=2)), k=3, stride=2, pad=1)
    ch = 64
    for stage, (mid, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        for i in range(blocks):
            s = 2 if stage > 0 and i == 0 else 1
            y = b.relu(b.conv(x, mid, k=1))
            y = b.relu(b.conv(y, mid, k=3, stride=s))
            y = b.conv(y, mid * 4, k=1)
            sc = b.conv(x, mid * 4, k=1, stride=s) if (s != 1 or ch != mid * 4) else x
            x = b.relu(b.add(y, sc))
            ch = mid * 4
    return b.build(b.gemm(b.flatten(b.gap(x)), 1000, name="fc"), output_names=["logits"])


if __name__ == "__main__":
    sys.exit(main())
