"""Templated locations on a real deployment: values from ``dag_run.conf`` outside ``[genmedia] input_roots`` and
``destination_roots`` fail their tasks on the first try, before anything is paid for; inside, the same DAG runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from genmedia_stack import Deployment, EmulatorProcess
from tests.deployment.conftest import budget_connections, dag_sources, record_scenario

DAG_ID = "deploy_roots"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The one destination root, and a folder outside every root with an image in it."""
    inside, outside = tmp_path_factory.mktemp("published"), tmp_path_factory.mktemp("outside")
    Image.new("RGB", (256, 256), (30, 140, 90)).save(outside / "product.png")
    return {"inside": inside, "outside": outside}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, emulator_process: EmulatorProcess, folders: dict[str, Path]
) -> Iterator[Deployment]:
    """The module's deployment: input_roots left at its default (the DAGs folder), one destination root."""
    stack = Deployment(
        root=tmp_path_factory.mktemp("deployment"),
        dag_sources=dag_sources(),
        emulator=emulator_process,
        extra_env={
            **budget_connections(emulator_process),
            "AIRFLOW__GENMEDIA__DESTINATION_ROOTS": folders["inside"].as_uri(),
        },
    )
    try:
        yield stack.start()
    finally:
        stack.stop()


def task_log(deployment: Deployment, run_id: str, task_id: str) -> str:
    """The text of every log of one task (each map index, each try) in a run."""
    paths = deployment.task_logs(DAG_ID, f"run_id={run_id}/task_id={task_id}/**/*.log")
    return "\n".join(path.read_text(errors="replace") for path in paths)


@pytest.mark.compat
def test_values_outside_the_roots_fail_before_paying_and_without_retry(
    deployment: Deployment, folders: dict[str, Path]
) -> None:
    deployment.emulator.reset()
    deployment.wait_for_dags(DAG_ID)
    deployment.unpause(DAG_ID)
    conf = {"image": str(folders["outside"] / "product.png"), "destination": folders["outside"].as_uri()}
    run_id = deployment.trigger(DAG_ID, conf)

    run_state = deployment.wait_for_run(DAG_ID, run_id, timeout=180)
    states = deployment.states(DAG_ID, run_id)
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
    deployment.wait_for_dags(DAG_ID)
    deployment.unpause(DAG_ID)
    destination = folders["inside"] / "run"
    run_id = deployment.trigger(DAG_ID, {"destination": destination.as_uri()})  # the image param's default

    run_state = deployment.wait_for_run(DAG_ID, run_id, timeout=180)
    states = deployment.states(DAG_ID, run_id)
    submits = sum(deployment.emulator.stats()["submits"].values())
    first_try = sum(state == ("success", 1) for state in states.values())
    record_scenario("templated values inside the roots", len(states), first_try, submits)
    assert run_state == "success", deployment.failure_report(DAG_ID, run_id)
    assert submits == 2  # restyle and restyle_mapped[0], once each
    assert len(list(destination.glob("*.png"))) == 1
    assert first_try == len(states) == 5  # publish_nothing too: its destination is inside
