"""A local S3 server (moto in server mode) for tests that write to object storage (a pytest plugin, see
tests/conftest.py): ``s3_server`` starts it once per session, with bucket `BUCKET` and an ``aws`` connection
`S3_CONN_ID` pointing at it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

BUCKET = "genmedia-published"
S3_CONN_ID = "genmedia_test_s3"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A local S3 server on a free loopback port, with an ``aws`` connection pointing at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets per process, not per server: start from none, whatever ran before in this process.
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", json.dumps(connection))
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()
