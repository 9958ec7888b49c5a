"""Several replicas behind one client: calls are balanced per call (round_robin) and a replica
that goes away leaves the calls to the others."""

import numpy as np
import pytest
from factory import small_cnn
from inspector_client import InspectorClient
from inspector_client.client import channel_target

from inspector.config import InspectorConfig
from inspector.service.server import start_server


def test_targets_become_one_balanced_channel():
    assert channel_target("127.0.0.1:1,127.0.0.1:2") == ("ipv4:127.0.0.1:1,127.0.0.1:2", True)
    assert channel_target("localhost:7,127.0.0.1:8")[0].startswith("ipv4:127.0.0.1:7")
    assert channel_target("127.0.0.1:50051") == ("127.0.0.1:50051", False)
    assert channel_target("dns:///inspector.svc:50051")[1] is True
    with pytest.raises(ValueError, match="cannot resolve"):
        channel_target("no-such-host.invalid:1,127.0.0.1:2")


def test_calls_spread_over_replicas_and_survive_one_going_away(tmp_path):
    data = small_cnn(seed=52).SerializeToString()
    replicas = [start_server(InspectorConfig(store_dir=tmp_path / f"s{i}", vetting=False, intra_op_threads=1),
                             port=0) for i in range(2)]
    try:
        for r in replicas:  # each replica has the model (a shared store is a separate step)
            with InspectorClient(r.address, timeout=30) as c:
                c.load_model(data, name="cnn")
        x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
        with InspectorClient(",".join(r.address for r in replicas), timeout=30) as client:
            want = client.infer("cnn", x)["logits"]
            for _ in range(20):
                np.testing.assert_array_equal(client.infer("cnn", x)["logits"], want)
            served = [r.metrics.calls.get(("Infer", "OK"), 0) for r in replicas]
            assert min(served) >= 5 and sum(served) == 21  # both replicas took calls
            replicas[0].stop(grace=0)
            for _ in range(10):  # the channel drops the stopped replica; calls go to the other
                np.testing.assert_array_equal(client.infer("cnn", x)["logits"], want)
            assert replicas[1].metrics.calls[("Infer", "OK")] >= served[1] + 10
    finally:
        for r in replicas:
            r.stop(grace=0)
