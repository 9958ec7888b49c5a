"""ModelInfer over the Open Inference Protocol vs Infer over inspector.v1, same server, same model,
same run: median of 200 interleaved calls each (after a warm-up).

Cases per model: OIP gRPC (tritonclient.grpc, raw contents), OIP REST (tritonclient.http, binary
tensor data), inspector.v1 Infer (InspectorClient, chunked stream; and with shared memory, its
default for a client on the same host), and the in-process core call as the floor.

    .venv/bin/python benchmarks/bench_oip.py [--calls 200] [--models small,r18]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np
from common import THREADS, cpu_busy_fraction, interleaved


def main() -> int:
    import tritonclient.grpc as tg
    import tritonclient.http as th
    from factory import resnet18_like, small_cnn
    from inspector_client import InspectorClient

    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--models", default="small,r18")
    args = ap.parse_args()
    print(f"foreign CPU load before start: {cpu_busy_fraction():.0%}; onnxruntime threads: {THREADS}")
    server = start_server(InspectorConfig(store_dir=tempfile.mkdtemp(prefix="bench-oip-"), intra_op_threads=THREADS),
                          port=0, http_port=0)
    models = {"small": (small_cnn(seed=1), (1, 3, 32, 32)), "r18": (resnet18_like(), (1, 3, 224, 224))}
    results = {}
    try:
        v1 = InspectorClient(server.address, timeout=600, shared_memory=False)
        v1_shm = InspectorClient(server.address, timeout=600)
        grpc_c = tg.InferenceServerClient(server.address)
        http_c = th.InferenceServerClient(server.http.url.split("://", 1)[1])
        for key in args.models.split(","):
            model, shape = models[key]
            v1.load_model(model.SerializeToString(), name=key)
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            inp, out = model.graph.input[0].name, model.graph.output[0].name
            gi = tg.InferInput(inp, list(shape), "FP32")
            gi.set_data_from_numpy(x)
            hi = th.InferInput(inp, list(shape), "FP32")
            hi.set_data_from_numpy(x, binary_data=True)
            ho = [th.InferRequestedOutput(out, binary_data=True)]
            want = server.inspector.infer(key, x).outputs[out]
            assert np.allclose(grpc_c.infer(key, [gi]).as_numpy(out), want, atol=1e-5)
            assert np.allclose(v1.infer(key, x).outputs[out], want, atol=1e-5)
            cases = {
                "oip_grpc ModelInfer": lambda k=key, i=gi: grpc_c.infer(k, [i]),
                "oip_rest infer": lambda k=key, i=hi, o=ho: http_c.infer(k, [i], outputs=o),
                "v1 Infer (stream)": lambda k=key, a=x: v1.infer(k, a),
                "v1 Infer (shm)": lambda k=key, a=x: v1_shm.infer(k, a),
                "in-process core.infer": lambda k=key, a=x: server.inspector.infer(k, a),
            }
            medians = interleaved(cases, rounds=args.calls, warmup=5)
            base = medians["v1 Infer (stream)"]
            print(f"\n== {key} {list(shape)}: median of {args.calls} calls each (ms; ratio to v1 Infer (stream))")
            for name, t in medians.items():
                print(f"  {name:24s} {t * 1e3:8.3f} ms  {t / base:5.2f}x")
            results[key] = {k: round(v * 1e3, 3) for k, v in medians.items()}
        print(json.dumps({"median_ms": results, "calls": args.calls, "threads": THREADS}))
    finally:
        server.stop(grace=1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
