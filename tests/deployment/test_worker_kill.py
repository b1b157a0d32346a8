"""A worker-side wait whose task process is killed with SIGKILL: the retry resumes the same vendor task."""

from __future__ import annotations

import os
import signal

import pytest

from genmedia_stack import Deployment, wait_until
from tests.deployment.airflow_version import airflow_at_least
from tests.deployment.conftest import record_scenario

DAG_ID = "deploy_worker_wait"


@pytest.mark.compat
def test_the_retry_of_a_killed_wait_resumes_the_paid_task(deployment: Deployment) -> None:
    """Airflow 3.1+ retries the killed task itself; 3.0's supervisor fails a killed task process without retrying,
    so there the task is cleared, as a user would, and its next try must resume the same vendor task all the same."""
    deployment.emulator.configure(video_seconds=20)
    deployment.wait_for_dags(DAG_ID)
    deployment.unpause(DAG_ID)
    run_id = deployment.trigger(DAG_ID)

    def waiting_pid() -> int | None:
        submitted = deployment.emulator.stats()["submits"]["jimeng"] == 1
        ti = deployment.task_instances(DAG_ID, run_id)[0]
        return ti["pid"] if submitted and ti["state"] == "running" and ti["pid"] else None

    os.kill(wait_until(waiting_pid, 90, "the task to submit and wait on its worker"), signal.SIGKILL)
    note = ""
    if not airflow_at_least("3.1"):
        wait_until(lambda: deployment.task_instances(DAG_ID, run_id)[0]["state"] == "failed", 90, "the kill to fail it")
        # Cleared only once the scheduler has failed the run too: it could otherwise fail the run after the clear.
        wait_until(lambda: deployment.run_state(DAG_ID, run_id) == "failed", 90, "the kill to fail the run")
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": ["jimeng"], "reset_dag_runs": True}
        deployment.api("POST", f"/dags/{DAG_ID}/clearTaskInstances", json=body)
        wait_until(lambda: deployment.run_state(DAG_ID, run_id) != "failed", 30, "the cleared run to start again")
        note = "cleared after the kill: Airflow 3.0 does not retry a killed task; "

    run_state = deployment.wait_for_run(DAG_ID, run_id, timeout=120)
    states = deployment.states(DAG_ID, run_id)
    stats = deployment.emulator.stats()
    tries = ", ".join(f"{task} {state} on try {number}" for (task, _), (state, number) in states.items())
    first_try = sum(state == ("success", 1) for state in states.values())
    scenario = "worker SIGKILL after its submit, retries=1"
    record_scenario(scenario, len(states), first_try, stats["submits"]["jimeng"], note + tries)
    assert run_state == "success"
    assert states == {("jimeng", -1): ("success", 2)}
    assert (stats["submits"]["jimeng"], stats["submit_requests"]["jimeng"]) == (1, 1)
    retry_log = next((deployment.home / "logs" / f"dag_id={DAG_ID}").rglob("attempt=2.log")).read_text()
    assert "Resuming jimeng task" in retry_log
