"""A local S3 server (moto in server mode) for tests that write to object storage (a pytest plugin, see
tests/conftest.py): ``s3_server`` starts it once per session, with bucket `BUCKET` and an ``aws`` connection
`S3_CONN_ID` pointing at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

BUCKET = "genmedia-published"
S3_CONN_ID = "genmedia_test_s3"
ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"


def s3_connection(endpoint: str) -> dict[str, Any]:
    """An ``aws`` connection to the S3 server at ``endpoint``."""
    return {
        "conn_type": "aws",
        "login": ACCESS_KEY,
        "password": SECRET_KEY,
        "extra": {"endpoint_url": endpoint, "region_name": REGION},
    }


def aws_environment(endpoint: str) -> dict[str, str]:
    """The AWS SDK's environment variables that point it at the S3 server at ``endpoint``, for code that names no
    connection (as a machine with credentials of its own runs it)."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the server at ``endpoint``."""
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
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
