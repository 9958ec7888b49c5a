"""Names are aliases: one model, several names, each with its own preprocessing; loading the same
bytes under a new name never changes an existing name; moving a name is explicit."""

import grpc
import numpy as np
import pytest
from factory import small_cnn
from test_same_objects import _png


def test_names_are_aliases_with_their_own_spec(client):
    data = small_cnn(seed=33).SerializeToString()
    first = client.load_model(data, name="svc-a", preprocess={"resize": [32, 32]})
    second = client.load_model(data, name="svc-b", preprocess={"resize": [32, 32], "mean": [0.5, 0.5, 0.5],
                                                               "std": [0.5, 0.5, 0.5]})
    assert second.id == first.id and set(second.names) == {"svc-a", "svc-b"}
    a, b = client.model_info("svc-a"), client.model_info("svc-b")
    assert a.name == "svc-a" and a.preprocess == {"resize": [32, 32]}  # untouched by the second load
    assert b.name == "svc-b" and b.preprocess["mean"] == [0.5, 0.5, 0.5]
    image = _png(4)
    xa, xb = client.infer("svc-a", image)["logits"], client.infer("svc-b", image)["logits"]
    assert not np.allclose(xa, xb)  # each name preprocesses with its own spec
    other = small_cnn(seed=34).SerializeToString()
    with pytest.raises(grpc.RpcError) as err:
        client.load_model(other, name="svc-a")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "replace" in err.value.details()
    moved = client.load_model(other, name="svc-a", replace=True)
    assert client.model_info("svc-a").id == moved.id and client.model_info(first.id).names == ("svc-b",)
    assert client.unload_model("svc-b") == first.id  # its last name: the model goes
    with pytest.raises(grpc.RpcError) as err:
        client.model_info(first.id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    client.unload_model(moved.id)
