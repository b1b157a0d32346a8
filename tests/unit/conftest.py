"""Fixtures of the trigger and sensor tests: a scripted local vendor server and a connection to it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia import retries
from tests.unit.triggers.supervisor import supervisor  # noqa: F401  (a fixture of every unit test module)
from tests.unit.triggers.vendor import local_server, use_connection


@pytest.fixture(autouse=True)
def no_retry_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry waits are computed and logged but not spent (`retries.SKIP_WAITS`), so that no unit test sits through
    real backoff: a test of a wait reads the wait from the log."""
    monkeypatch.setattr(retries, "SKIP_WAITS", True)


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    """One threaded local server per test module."""
    with local_server() as running:
        yield running


@pytest.fixture
def vendor(server: HTTPServer) -> Iterator[HTTPServer]:
    """The module's server, its scripted routes cleared after the test."""
    yield server
    server.clear()


@pytest.fixture
def novita(monkeypatch: pytest.MonkeyPatch, vendor: HTTPServer) -> HTTPServer:
    """The server, with ``novita_default`` pointing at it."""
    use_connection(monkeypatch, "novita", vendor)
    return vendor


# The property tests (tests/unit/**/test_*_properties.py): 10,000 examples per property, with no per-example deadline
# (a shared CI machine's pauses are no bug). HYPOTHESIS_PROFILE=quick runs 200 while a property is being written.
settings.register_profile("genmedia", max_examples=10_000, deadline=None)
settings.register_profile("quick", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "genmedia"))
