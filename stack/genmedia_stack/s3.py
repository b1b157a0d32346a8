"""The local S3 server's connection and credentials, as components and tests reach it."""

from __future__ import annotations

from typing import Any

#: The ``aws`` connection to the local S3 server that `CeleryDeployment` keeps the pay-once records with, and the
#: credentials the server takes (moto's server takes any).
S3_CONN_ID = "genmedia_test_s3"
S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION = "testing", "testing", "us-east-1"


def s3_connection(endpoint: str) -> dict[str, Any]:
    """An ``aws`` connection to the S3 server at ``endpoint``."""
    return {
        "conn_type": "aws",
        "login": S3_ACCESS_KEY,
        "password": S3_SECRET_KEY,
        "extra": {"endpoint_url": endpoint, "region_name": S3_REGION},
    }


def aws_environment(endpoint: str) -> dict[str, str]:
    """The AWS SDK's environment variables that point it at the S3 server at ``endpoint``, for code that names no
    connection (as a machine with credentials of its own runs it)."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
    }
