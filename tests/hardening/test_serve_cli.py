"""`inspector serve` as a user starts it: flags reach the config; auth + TLS + metrics end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from inspector_client import InspectorClient

from inspector.cli.main import build_parser
from inspector.cli.serve import config_from_args

ROOT = Path(__file__).resolve().parents[2]


def test_flags_fill_the_config(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("tok-1\n")
    args = build_parser().parse_args([
        "serve", "--store", str(tmp_path / "s"), "--auth-token-file", str(tokens), "--no-vetting",
        "--vet-timeout", "7", "--workers", "3", "--max-queued", "5", "--max-response-mb", "2",
        "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"])
    config = config_from_args(args)
    assert config.auth_tokens[0] == "tok-1" and config.vetting is False and config.vet_timeout_s == 7
    assert (config.max_concurrent, config.max_queued, config.max_response_bytes) == (3, 5, 2 << 20)
    assert (config.tls_cert, config.tls_key, config.tls_client_ca) == (Path("c.pem"), Path("k.pem"),
                                                                     Path("ca.pem"))
    defaults = config_from_args(build_parser().parse_args(["serve"]))
    assert defaults.vetting is True and defaults.tls_cert is None


def test_serve_process_with_token_tls_and_metrics(tmp_path, certs, small_model_bytes):
    tokens = tmp_path / "tokens"
    tokens.write_text("cli-token\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")]))
    env.pop("INSPECTOR_AUTH_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector.cli.main", "serve", "--port", "0", "--store", str(tmp_path / "s"),
         "--auth-token-file", str(tokens), "--tls-cert", str(certs / "server.pem"),
         "--tls-key", str(certs / "server.key"), "--metrics-port", "0", "--no-vetting",
         "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = proc.stdout.readline().split(":")[-1].strip()
        metrics = proc.stdout.readline().split()[-1]
        target = f"localhost:{port}"
        with InspectorClient(target, token="cli-token", tls_ca=certs / "ca.pem", timeout=30) as client:
            assert client.load_model(small_model_bytes).id
        with InspectorClient(target, tls_ca=certs / "ca.pem", timeout=30) as anonymous:
            with pytest.raises(grpc.RpcError) as info:
                anonymous.list_models()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        text = urllib.request.urlopen(metrics, timeout=10).read().decode()
        assert 'inspector_rpc_total{code="OK",rpc="UploadModel"} 1.0' in text  # prometheus-client's form
        assert 'inspector_rpc_total{code="UNAUTHENTICATED",rpc="ListModels"} 1.0' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert '"code": "UNAUTHENTICATED"' in err and "cli-token" not in err
    refusal = [json.loads(line) for line in err.splitlines() if "refused" in line]
    assert refusal and re.fullmatch(r"[0-9a-f]{12}", refusal[0]["request_id"])


def test_serve_refuses_bad_tls_flags(tmp_path, certs):
    done = subprocess.run(
        [sys.executable, "-m", "inspector.cli.main", "serve", "--port", "0", "--store", str(tmp_path / "s"),
         "--tls-cert", str(certs / "server.pem")], capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 2 and "both a certificate" in done.stderr
