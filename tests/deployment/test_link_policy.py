"""Links the provider fetches, on a real deployment: a vendor output link to a non-public address outside the
connection's own origin is refused, its task fails without retry naming ``[genmedia] allowed_private_origins``, and
nothing reaches the address; listed in that setting, the same origin is fetched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from genmedia_stack import Deployment, EmulatorProcess
from tests.deployment.conftest import EXAMPLE_DAGS, HERE, destination_roots

DAG_ID = "deploy_link_policy"
SETTING = "allowed_private_origins"


def counting_server() -> HTTPServer:
    """A server on a loopback port of its own that answers every GET with a few bytes and logs each request."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request(re.compile(".*")).respond_with_data(b"not an image, but bytes to publish")
    server.start()
    return server


@pytest.fixture(scope="module")
def targets() -> Iterator[tuple[HTTPServer, HTTPServer]]:
    """Two counting servers: one no setting lists, and one listed in ``[genmedia] allowed_private_origins``."""
    unlisted, listed = counting_server(), counting_server()
    yield unlisted, listed
    for server in (unlisted, listed):
        server.stop()


@pytest.fixture(scope="module")
def link_deployment(
    tmp_path_factory: pytest.TempPathFactory,
    emulator_process: EmulatorProcess,
    targets: tuple[HTTPServer, HTTPServer],
) -> Iterator[Deployment]:
    """The one deployment of this module, with the listed server's origin in ``[genmedia] allowed_private_origins``."""
    listed = targets[1].url_for("/").rstrip("/")
    stack = Deployment(
        root=tmp_path_factory.mktemp("link-deployment"),
        dag_sources=[EXAMPLE_DAGS / "data", HERE / "dags" / "link_policy_dags.py"],
        emulator=emulator_process,
        extra_env={"AIRFLOW__GENMEDIA__ALLOWED_PRIVATE_ORIGINS": listed} | destination_roots(tmp_path_factory),
    )
    try:
        yield stack.start()
    finally:
        stack.stop()


def publish(deployment: Deployment, tmp_path: Path, **emulator_settings: object) -> tuple[tuple[str, int], str]:
    """Run the DAG with the emulator's links shaped by ``emulator_settings``: the publish task's state and try, and
    its log."""
    deployment.emulator.reset()
    deployment.emulator.configure(**emulator_settings)
    deployment.wait_for_dags(DAG_ID)
    deployment.unpause(DAG_ID)
    run_id = deployment.trigger(DAG_ID, conf={"destination": (tmp_path / "published").as_uri()})
    deployment.wait_for_run(DAG_ID, run_id, timeout=180)
    states = deployment.states(DAG_ID, run_id)
    assert states[("make", -1)] == ("success", 1), deployment.failure_report(DAG_ID, run_id)
    logs = deployment.task_logs(DAG_ID, f"run_id={run_id}/task_id=publish/attempt=*.log")
    return states[("publish", -1)], "\n".join(path.read_text(errors="replace") for path in logs)


def test_links_to_private_addresses_are_refused_unless_listed(
    link_deployment: Deployment, targets: tuple[HTTPServer, HTTPServer], tmp_path: Path
) -> None:
    unlisted, listed = targets
    emulator = link_deployment.emulator

    # (1) An output link to another loopback origin than the connection's.
    state, log = publish(link_deployment, tmp_path / "1", public_url=unlisted.url_for("/").rstrip("/"))
    assert state == ("failed", 1)
    assert "a loopback address" in log and SETTING in log
    assert "Signature=" not in log  # the link is shown without its signature

    # (2) An output link to the cloud metadata address: refused before any connect (no try, no retry of a download).
    state, log = publish(link_deployment, tmp_path / "2", public_url="http://169.254.169.254")
    assert state == ("failed", 1)
    assert "resolves to 169.254.169.254, a link-local address" in log and SETTING in log
    assert "GET http://169.254.169.254" not in log  # a download that was tried would say "GET <link> failed"

    # (3) The connection's own origin (the emulator) redirects to another origin.
    state, log = publish(link_deployment, tmp_path / "3", redirect_downloads=unlisted.url_for("/").rstrip("/"))
    assert state == ("failed", 1)
    assert "a loopback address" in log and SETTING in log
    assert [task["downloads"] for task in emulator.stats()["tasks"].values()] == [1]  # the first hop, answered
    assert len(unlisted.log) == 0

    # The same kind of link, to the origin listed in [genmedia] allowed_private_origins, is fetched and published.
    state, log = publish(link_deployment, tmp_path / "4", public_url=listed.url_for("/").rstrip("/"))
    assert state == ("success", 1), log
    assert len(listed.log) == 1
    assert len(unlisted.log) == 0
    assert len(list((tmp_path / "4" / "published").glob("novita_*_0.*"))) == 1
