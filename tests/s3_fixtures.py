"""A local S3 server (moto in server mode) for tests that write to object storage (a pytest plugin, see
tests/conftest.py): ``s3_server`` starts it once per session, with bucket `BUCKET` and an ``aws`` connection
`S3_CONN_ID` pointing at it (the connection and its credentials are the local stack harness's, which publishes to the
same kind of server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from genmedia_stack import S3_ACCESS_KEY, S3_CONN_ID, S3_REGION, S3_SECRET_KEY, s3_connection

BUCKET = "genmedia-published"


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the server at ``endpoint``."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name=S3_REGION,
    )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A local S3 server on a free loopback port, with an ``aws`` connection pointing at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets per process, not per server: start from none, whatever ran before in this process.
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", json.dumps(s3_connection(endpoint)))
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()
