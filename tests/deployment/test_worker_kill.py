"""A worker-side wait whose task process is killed with SIGKILL: the retry resumes the same vendor task."""

from __future__ import annotations

import os
import signal

import pytest

from tests.deployment.conftest import record_scenario
from tests.deployment.stack import Deployment, requires_airflow, wait_until

DAG_ID = "deploy_worker_wait"


@pytest.mark.compat
@requires_airflow("3.1", "A retry of a task whose process was killed (3.0's supervisor fails it without retrying)")
def test_the_retry_of_a_killed_wait_resumes_the_paid_task(deployment: Deployment) -> None:
    deployment.emulator.configure(video_seconds=20)
    deployment.wait_for_dags(DAG_ID)
    deployment.unpause(DAG_ID)
    run_id = deployment.trigger(DAG_ID)

    def waiting_pid() -> int | None:
        submitted = deployment.emulator.stats()["submits"]["jimeng"] == 1
        ti = deployment.task_instances(DAG_ID, run_id)[0]
        return ti["pid"] if submitted and ti["state"] == "running" and ti["pid"] else None

    os.kill(wait_until(waiting_pid, 90, "the task to submit and wait on its worker"), signal.SIGKILL)

    run_state = deployment.wait_for_run(DAG_ID, run_id, timeout=120)
    states = deployment.states(DAG_ID, run_id)
    stats = deployment.emulator.stats()
    tries = ", ".join(f"{task} {state} on try {number}" for (task, _), (state, number) in states.items())
    first_try = sum(state == ("success", 1) for state in states.values())
    scenario = "worker SIGKILL after its submit, retries=1"
    record_scenario(scenario, len(states), first_try, stats["submits"]["jimeng"], tries)
    assert run_state == "success"
    assert states == {("jimeng", -1): ("success", 2)}
    assert (stats["submits"]["jimeng"], stats["submit_requests"]["jimeng"]) == (1, 1)
    retry_log = next((deployment.home / "logs" / f"dag_id={DAG_ID}").rglob("attempt=2.log")).read_text()
    assert "Resuming jimeng task" in retry_log
