"""Deferred tasks survive a triggerer killed with SIGKILL, and run once each under two triggerers (HA)."""

from __future__ import annotations

import re

import pytest

from genmedia_stack import Deployment, wait_until
from tests.deployment.conftest import record_scenario

DAG_ID = "deploy_video_waits"
TASKS = 8  # 4 Jimeng and 4 Bailian videos


def start_waiting_batch(deployment: Deployment, video_seconds: float) -> str:
    deployment.emulator.reset()
    deployment.emulator.configure(video_seconds=video_seconds)
    deployment.wait_for_dags(DAG_ID)
    deployment.unpause(DAG_ID)
    return deployment.trigger(DAG_ID)


def assert_first_try_and_paid_once(deployment: Deployment, run_id: str, scenario: str = "") -> None:
    """Every task succeeded on its first try and paid one job; ``scenario`` names the counts in the summary."""
    states = deployment.states(DAG_ID, run_id)
    if scenario:  # counted before the checks, so that a failure shows its figures too
        first_try = sum(state == ("success", 1) for state in states.values())
        record_scenario(scenario, len(states), first_try, sum(deployment.emulator.stats()["submits"].values()))
    assert len(states) == TASKS
    assert {task: state for task, state in states.items() if state != ("success", 1)} == {}
    stats = deployment.emulator.stats()
    assert (stats["submits"]["jimeng"], stats["submits"]["bailian"]) == (4, 4)
    assert stats["submit_requests"] == stats["submits"]


def fired_events(deployment: Deployment, run_id: str) -> dict[str, int]:
    """How many events each task instance's triggers fired in a run, over every triggerer that ran one.

    A trigger's last lines can reach its triggerer after the trigger has finished; Airflow then writes them to
    the triggerer's own output instead of the trigger log, so both are read.
    """
    named = re.compile(re.escape(f"{DAG_ID}/{run_id}/") + r"([^/]+)/(-?\d+)/")
    paths = [*(deployment.home / "logs" / f"dag_id={DAG_ID}").rglob("*.log.trigger.*")]
    paths += deployment.logs.glob("triggerer*.log")
    counts: dict[str, int] = {}
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if "Trigger fired event" in line and (match := named.search(line)):
                task = f"{match[1]}[{match[2]}]"
                counts[task] = counts.get(task, 0) + 1
    return counts


@pytest.mark.compat
def test_a_triggerer_killed_while_tasks_wait_loses_none_of_them(deployment: Deployment) -> None:
    run_id = start_waiting_batch(deployment, video_seconds=25)
    waiting = wait_until(lambda: len(deployment.deferred(DAG_ID, run_id)) >= 5 or None, 90, "5 deferred tasks")

    deployment.kill_component("triggerer")  # SIGKILL to its whole process group; returns once it is gone
    # Its tasks are still deferred with no triggerer left (none failed with it); then a new one is started.
    wait_until(lambda: len(deployment.deferred(DAG_ID, run_id)) >= 5 or None, 30, "5 tasks still deferred")
    deployment.start_component("triggerer")

    run_state = deployment.wait_for_run(DAG_ID, run_id, timeout=180)
    assert waiting
    assert_first_try_and_paid_once(deployment, run_id, "triggerer SIGKILL mid-wait, restarted")
    assert run_state == "success", deployment.failure_report(DAG_ID, run_id)


def test_two_triggerers_fire_exactly_one_event_per_task(deployment: Deployment) -> None:
    deployment.start_component("triggerer", instance="triggerer-2")
    wait_until(
        lambda: (
            len({job["hostname"] for job in _alive_triggerers(deployment)}) >= 1
            and len(_alive_triggerers(deployment)) >= 2
        ),
        60,
        "two live triggerers",
    )
    run_id = start_waiting_batch(deployment, video_seconds=6)

    assert deployment.wait_for_run(DAG_ID, run_id, timeout=180) == "success"
    assert_first_try_and_paid_once(deployment, run_id)

    def every_task_logged() -> dict[str, int] | None:
        counts = fired_events(deployment, run_id)
        return counts if len(counts) == TASKS else None

    events = wait_until(every_task_logged, 30, "a fired event logged for every task")
    assert events == {task: 1 for task in events}


def _alive_triggerers(deployment: Deployment) -> list[dict[str, object]]:
    jobs = deployment.api("GET", "/jobs", params={"job_type": "TriggererJob", "is_alive": True, "limit": 10})
    return list(jobs["jobs"])
