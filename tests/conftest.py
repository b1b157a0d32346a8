"""Test settings: a throwaway AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="genmedia-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# Triggers run inline here, with no worker report to race (tests/deployment checks the default on a real stack).
os.environ.setdefault("AIRFLOW__GENMEDIA__DEFER_SETTLE", "0")
# dag.test() parses the whole folder and runs only DAGs inside it: the system tests' own DAGs live there.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "tests" / "system" / "dags"))

pytest_plugins = ["tests.emulator_fixtures", "tests.s3_fixtures"]


def trust_origins(monkeypatch: pytest.MonkeyPatch, *urls: str) -> None:
    """List the origins of ``urls`` (servers the test runs on loopback) in ``[genmedia] allowed_private_origins``."""
    monkeypatch.setenv("AIRFLOW__GENMEDIA__ALLOWED_PRIVATE_ORIGINS", ",".join(urls))


@pytest.fixture
def trusted_httpserver(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    """pytest-httpserver's server, its origin listed in ``[genmedia] allowed_private_origins``, for tests of what a
    download does rather than of whether it may reach loopback (`tests/unit/test_safe_fetch.py`)."""
    trust_origins(monkeypatch, httpserver.url_for("/").rstrip("/"))
    return httpserver
