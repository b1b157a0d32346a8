"""Trust only what the DAG author wrote, on a real deployment (docs/security.md), with one deployment for both:

- templated locations: values from ``dag_run.conf`` outside ``[genmedia] input_roots`` and ``destination_roots`` fail
  their tasks on the first try, before anything is paid for; inside, the same DAG runs;
- links the provider fetches: a vendor output link to a non-public address outside the connection's own origin is
  refused, its task fails without retry naming ``[genmedia] allowed_private_origins``, and nothing reaches the
  address; listed in that setting, the same origin is fetched.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from pytest_httpserver import HTTPServer

from genmedia_stack import Deployment, EmulatorProcess
from tests.deployment.conftest import EXAMPLE_DAGS, HERE, destination_roots, record_scenario

DAG_ID = "deploy_link_policy"
ROOTS_DAG = "deploy_roots"
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
def folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The one destination root, and a folder outside every root with an image in it."""
    inside = tmp_path_factory.mktemp("published")
    outside = Path(tempfile.mkdtemp(prefix="genmedia-outside-"))  # not under the session's folders, which are roots
    Image.new("RGB", (256, 256), (30, 140, 90)).save(outside / "product.png")
    yield {"inside": inside, "outside": outside}
    shutil.rmtree(outside)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    emulator_process: EmulatorProcess,
    targets: tuple[HTTPServer, HTTPServer],
    folders: dict[str, Path],
) -> Iterator[Deployment]:
    """The module's one deployment: input_roots left at its default (the DAGs folder), the session's folders as
    destination roots (``folders["outside"]`` is elsewhere), the listed server's origin in
    ``[genmedia] allowed_private_origins``."""
    listed = targets[1].url_for("/").rstrip("/")
    stack = Deployment(
        root=tmp_path_factory.mktemp("deployment"),
        dag_sources=[EXAMPLE_DAGS / "data", HERE / "dags" / "link_policy_dags.py", HERE / "dags" / "roots_dags.py"],
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
    deployment: Deployment, targets: tuple[HTTPServer, HTTPServer], tmp_path: Path
) -> None:
    unlisted, listed = targets
    emulator = deployment.emulator

    # (1) An output link to another loopback origin than the connection's.
    state, log = publish(deployment, tmp_path / "1", public_url=unlisted.url_for("/").rstrip("/"))
    assert state == ("failed", 1)
    assert "a loopback address" in log and SETTING in log
    assert "Signature=" not in log  # the link is shown without its signature

    # (2) An output link to the cloud metadata address: refused before any connect (no try, no retry of a download).
    state, log = publish(deployment, tmp_path / "2", public_url="http://169.254.169.254")
    assert state == ("failed", 1)
    assert "resolves to 169.254.169.254, a link-local address" in log and SETTING in log
    assert "GET http://169.254.169.254" not in log  # a download that was tried would say "GET <link> failed"

    # (3) The connection's own origin (the emulator) redirects to another origin.
    state, log = publish(deployment, tmp_path / "3", redirect_downloads=unlisted.url_for("/").rstrip("/"))
    assert state == ("failed", 1)
    assert "a loopback address" in log and SETTING in log
    assert [task["downloads"] for task in emulator.stats()["tasks"].values()] == [1]  # the first hop, answered
    assert len(unlisted.log) == 0

    # The same kind of link, to the origin listed in [genmedia] allowed_private_origins, is fetched and published.
    state, log = publish(deployment, tmp_path / "4", public_url=listed.url_for("/").rstrip("/"))
    assert state == ("success", 1), log
    assert len(listed.log) == 1
    assert len(unlisted.log) == 0
    assert len(list((tmp_path / "4" / "published").glob("novita_*_0.*"))) == 1


def task_log(deployment: Deployment, run_id: str, task_id: str) -> str:
    """The text of every log of one task (each map index, each try) in a run."""
    paths = deployment.task_logs(ROOTS_DAG, f"run_id={run_id}/task_id={task_id}/**/*.log")
    return "\n".join(path.read_text(errors="replace") for path in paths)


@pytest.mark.compat
def test_values_outside_the_roots_fail_before_paying_and_without_retry(
    deployment: Deployment, folders: dict[str, Path]
) -> None:
    deployment.emulator.reset()
    deployment.wait_for_dags(ROOTS_DAG)
    deployment.unpause(ROOTS_DAG)
    conf = {"image": str(folders["outside"] / "product.png"), "destination": folders["outside"].as_uri()}
    run_id = deployment.trigger(ROOTS_DAG, conf)

    run_state = deployment.wait_for_run(ROOTS_DAG, run_id, timeout=180)
    states = deployment.states(ROOTS_DAG, run_id)
    stats = deployment.emulator.stats()
    record_scenario("templated values outside the roots", len(states), 0, sum(stats["submits"].values()))
    assert run_state == "failed"
    # Failed on the first of their three tries, and never up for retry.
    assert {task: state for task, (state, _) in states.items()} == {
        ("restyle", -1): "failed",
        ("images", -1): "success",
        ("restyle_mapped", 0): "failed",
        ("publish", -1): "upstream_failed",
        ("publish_nothing", -1): "failed",
    }
    assert {states[task][1] for task in [("restyle", -1), ("restyle_mapped", 0), ("publish_nothing", -1)]} == {1}
    assert sum(stats["submits"].values()) == 0 and sum(stats["submit_requests"].values()) == 0
    for task_id in ("restyle", "restyle_mapped"):
        assert "image: " in task_log(deployment, run_id, task_id)
        assert "is outside [genmedia] input_roots" in task_log(deployment, run_id, task_id)
    assert "destination: " in task_log(deployment, run_id, "publish_nothing")
    assert "is outside [genmedia] destination_roots" in task_log(deployment, run_id, "publish_nothing")
    assert [path for path in folders["outside"].rglob("*") if path.name != "product.png"] == []


def test_values_inside_the_roots_run(deployment: Deployment, folders: dict[str, Path]) -> None:
    deployment.emulator.reset()
    deployment.wait_for_dags(ROOTS_DAG)
    deployment.unpause(ROOTS_DAG)
    destination = folders["inside"] / "run"
    run_id = deployment.trigger(ROOTS_DAG, {"destination": destination.as_uri()})  # the image param's default

    run_state = deployment.wait_for_run(ROOTS_DAG, run_id, timeout=180)
    states = deployment.states(ROOTS_DAG, run_id)
    submits = sum(deployment.emulator.stats()["submits"].values())
    first_try = sum(state == ("success", 1) for state in states.values())
    record_scenario("templated values inside the roots", len(states), first_try, submits)
    assert run_state == "success", deployment.failure_report(ROOTS_DAG, run_id)
    assert submits == 2  # restyle and restyle_mapped[0], once each
    assert len(list(destination.glob("*.png"))) == 1
    assert first_try == len(states) == 5  # publish_nothing too: its destination is inside
