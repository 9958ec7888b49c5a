"""TLS and mutual TLS credentials for the server from PEM files (the client builds its own)."""

from __future__ import annotations

from pathlib import Path

import grpc


def _read(path: Path | str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc.strerror}") from None


def server_credentials(cert: Path | str, key: Path | str,
                       client_ca: Path | str | None = None) -> grpc.ServerCredentials:
    """TLS with `cert`/`key`; with `client_ca`, clients must present a certificate it signed."""
    pair = (_read(key, "TLS key"), _read(cert, "TLS certificate"))
    root = _read(client_ca, "client CA")
    return grpc.ssl_server_credentials([pair], root_certificates=root,
                                       require_client_auth=root is not None)
