"""Issue 7: audit throughput vs plain inference throughput, same model, same images, same server.

Both go through gRPC on loopback: AuditStats streams batches and aggregates next to the tensors;
the baseline streams the same batches through Infer. Target: audit >= 0.7x inference throughput.
Two audit lengths: 64 images (the fixed cost of one audit, ~70 ms for the columnar report of 45
tensors and its rebuilding in the client, weighs on it) and 256 images (closer to the steady state
of a real audit of hundreds of images).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np
from common import ROOT, THREADS, cpu_busy_fraction

BATCH, LENGTHS = 8, (64, 256)


def main() -> int:
    from factory import resnet18_like
    from inspector_client import InspectorClient

    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    print(f"foreign CPU load before start: {cpu_busy_fraction():.0%}")
    server = start_server(InspectorConfig(store_dir=tempfile.mkdtemp(), intra_op_threads=THREADS), port=0)
    client = InspectorClient(server.address, timeout=900)
    client.load_model(resnet18_like(size=224).SerializeToString(), name="r18")
    rng = np.random.default_rng(0)
    pool = [rng.standard_normal((BATCH, 3, 224, 224)).astype(np.float32) for _ in range(max(LENGTHS) // BATCH)]
    client.audit("r18", pool[:1])  # warm: sessions built
    client.infer("r18", pool[0])
    results = {}
    for images in LENGTHS:
        batches = pool[:images // BATCH]
        rows = {"inference": [], "audit": []}
        for _ in range(5):  # interleaved rounds (this machine drifts: medians of 5)
            t0 = time.perf_counter()
            for b in batches:
                client.infer("r18", b)
            rows["inference"].append(images / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            audit = client.audit("r18", batches)
            rows["audit"].append(images / (time.perf_counter() - t0))
        infer, aud = float(np.median(rows["inference"])), float(np.median(rows["audit"]))
        tensors = len(audit["layers"])
        print(f"\n== audit throughput, ResNet-18-like 224x224, batches of {BATCH}, {images} images, "
              f"{tensors} audited tensors")
        print(f"  plain inference over gRPC {infer:6.1f} images/s")
        print(f"  audit over gRPC           {aud:6.1f} images/s   ratio {aud / infer:.2f}x (target >= 0.7x: "
              f"{'met' if aud / infer >= 0.7 else 'MISSED'})")
        results[str(images)] = {"inference_images_per_s": infer, "audit_images_per_s": aud,
                                "ratio": aud / infer, "tensors": tensors}
    server.stop(0)
    results["in_process_interleaved"] = interleaved_in_process(resnet18_like(size=224), pool)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "audit.json").write_text(json.dumps(results, indent=2))
    return 0


def interleaved_in_process(model, pool: list, rounds: int = 3) -> dict:
    """The same work without gRPC, alternating batch by batch (a plain forward, then the audit
    graph, then the fold), so the ratios are immune to this machine's slow drifts between phases:
    the audit graph alone sets the ceiling, the fold and report take the rest."""
    from inspector.audit.audit import AuditRun, fold_batch
    from inspector.runtime.access import OrtModelAccess

    access = OrtModelAccess(model)
    warm = AuditRun(model, memo=access.memo)
    fold_batch(access, warm, pool[0])
    warm.result_columns()
    names, build = warm.graph_reductions()
    rows = []
    for _ in range(rounds):
        run = AuditRun(model, memo=access.memo)
        run.graph_reductions()
        plain = graph = fold = 0.0
        for x in pool:
            t0 = time.perf_counter()
            access.forward(x)
            t1 = time.perf_counter()
            values = access.forward_variant(("audit", names), build, x, names)
            t2 = time.perf_counter()
            run.recentre(values)
            run.update_reduced(values, batch_size=len(x))
            t3 = time.perf_counter()
            plain, graph, fold = plain + t1 - t0, graph + t2 - t1, fold + t3 - t2
        t0 = time.perf_counter()
        run.result_columns()
        rows.append((plain, graph, fold, time.perf_counter() - t0))
    plain, graph, fold, report = (float(np.median(c)) for c in zip(*rows, strict=True))
    n = len(pool)
    print(f"\n== in process, batch by batch interleaved, {n * BATCH} images (medians of {rounds} rounds)")
    print(f"  per batch: plain forward {1e3 * plain / n:.1f} ms, audit graph {1e3 * graph / n:.1f} ms, "
          f"fold {1e3 * fold / n:.1f} ms; report {1e3 * report:.0f} ms")
    print(f"  audit graph alone {plain / graph:.2f}x a forward; with the fold and report {plain / (graph + fold + report):.2f}x")
    return {"graph_ratio": plain / graph, "ratio": plain / (graph + fold + report),
            "ms_per_batch": {"plain": 1e3 * plain / n, "graph": 1e3 * graph / n, "fold": 1e3 * fold / n},
            "report_ms": 1e3 * report}


if __name__ == "__main__":
    sys.exit(main())
