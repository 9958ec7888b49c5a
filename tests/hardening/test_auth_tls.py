"""Bearer-token auth and TLS / mutual TLS over real servers and real channels."""

from __future__ import annotations

import logging
import re

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from inspector_client import InspectorClient

from inspector.service.auth import load_tokens, token_matches


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def test_tokens_from_file_and_env(tmp_path, monkeypatch):
    path = tmp_path / "tokens"
    path.write_text("# operators\nalpha-1\n\n  beta-2  \nalpha-1\n")
    monkeypatch.setenv("INSPECTOR_AUTH_TOKEN", "gamma-3")
    assert load_tokens(path) == ("alpha-1", "beta-2", "gamma-3")
    monkeypatch.delenv("INSPECTOR_AUTH_TOKEN")
    assert load_tokens(None) == ()
    (tmp_path / "empty").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="holds no token"):
        load_tokens(tmp_path / "empty")
    assert token_matches("beta-2", ("alpha-1", "beta-2"))
    assert not token_matches("beta-", ("alpha-1", "beta-2"))
    assert not token_matches("", ("alpha-1",))


def test_token_auth(make_server, small_model_bytes, caplog):
    running = make_server(auth_tokens=("s3cret-token", "second-token"), vetting=False)
    with InspectorClient(running.address, timeout=30) as anonymous:
        assert _code(anonymous.list_models) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(lambda: anonymous.load_model(small_model_bytes)) == grpc.StatusCode.UNAUTHENTICATED
        image = np.zeros((1, 3, 32, 32), np.float32)  # server-streaming and bidirectional calls too
        assert _code(lambda: anonymous.infer("any", image)) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(lambda: anonymous.audit("any", [image])) == grpc.StatusCode.UNAUTHENTICATED
        unknown = anonymous._channel.unary_unary("/inspector.v1.Inspector/NoSuchMethod")
        assert _code(lambda: unknown(b"", timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    with caplog.at_level(logging.WARNING, logger="inspector.service.auth"), \
            InspectorClient(running.address, token="wrong-token-xyz", timeout=30) as wrong:
        assert _code(wrong.methods) == grpc.StatusCode.UNAUTHENTICATED
    assert re.search(r"refused /inspector.v1.Inspector/ListMethods from \S+: a wrong token", caplog.text)
    assert "wrong-token-xyz" not in caplog.text
    for token in ("s3cret-token", "second-token"):
        with InspectorClient(running.address, token=token, timeout=30) as good:
            info = good.load_model(small_model_bytes)
            assert [m.id for m in good.list_models()] == [info.id]
    # health stays open, so load balancers can probe without a token
    with grpc.insecure_channel(running.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert running.metrics.calls[("ListModels", "UNAUTHENTICATED")] == 1


def test_tls_and_mutual_tls(make_server, certs, small_model_bytes):
    tls = make_server(tls_cert=certs / "server.pem", tls_key=certs / "server.key", vetting=False)
    target = f"localhost:{tls.port}"
    with InspectorClient(target, tls_ca=certs / "ca.pem", timeout=30) as client:
        assert client.load_model(small_model_bytes).id
    with InspectorClient(target, timeout=5) as plain:  # plain text against a TLS port
        assert _code(plain.list_models) == grpc.StatusCode.UNAVAILABLE
    with InspectorClient(target, tls_ca=certs / "rogue_ca.pem", timeout=5) as untrusting:
        assert _code(untrusting.list_models) == grpc.StatusCode.UNAVAILABLE

    mtls = make_server(tls_cert=certs / "server.pem", tls_key=certs / "server.key",
                       tls_client_ca=certs / "ca.pem", vetting=False)
    target = f"localhost:{mtls.port}"
    with InspectorClient(target, tls_ca=certs / "ca.pem", tls_cert=certs / "client.pem",
                         tls_key=certs / "client.key", timeout=30) as client:
        assert client.methods()
    with InspectorClient(target, tls_ca=certs / "ca.pem", timeout=5) as no_cert:
        assert _code(no_cert.methods) == grpc.StatusCode.UNAVAILABLE
    with InspectorClient(target, tls_ca=certs / "ca.pem", tls_cert=certs / "rogue_client.pem",
                         tls_key=certs / "rogue_client.key", timeout=5) as rogue:
        assert _code(rogue.methods) == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        InspectorClient(target, tls_ca=certs / "ca.pem", tls_cert=certs / "client.pem")


def test_tls_configuration_errors(make_server, certs):
    with pytest.raises(ValueError, match="both a certificate"):
        make_server(tls_cert=certs / "server.pem")
    with pytest.raises(ValueError, match="needs TLS"):
        make_server(tls_client_ca=certs / "ca.pem")
    with pytest.raises(ValueError, match="cannot read"):
        make_server(tls_cert=certs / "missing.pem", tls_key=certs / "server.key")
