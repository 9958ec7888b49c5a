"""TLS and mutual TLS credentials from PEM files, for the server and for clients."""

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


def channel_credentials(ca: Path | str | None = None, cert: Path | str | None = None,
                        key: Path | str | None = None) -> grpc.ChannelCredentials:
    """Client TLS: trust `ca` (None: the system roots); `cert`+`key` for mutual TLS."""
    if (cert is None) != (key is None):
        raise ValueError("give both a client certificate and its key for mutual TLS, or neither")
    return grpc.ssl_channel_credentials(root_certificates=_read(ca, "CA"),
                                        private_key=_read(key, "TLS key"),
                                        certificate_chain=_read(cert, "TLS certificate"))
