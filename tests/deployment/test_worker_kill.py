"""A worker-side wait whose task process is killed with SIGKILL: the retry resumes the same vendor task."""

from __future__ import annotations

import os
import signal

from tests.deployment.stack import Deployment, wait_until

DAG_ID = "deploy_worker_wait"


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

    assert deployment.wait_for_run(DAG_ID, run_id, timeout=120) == "success"
    assert deployment.states(DAG_ID, run_id) == {("jimeng", -1): ("success", 2)}
    stats = deployment.emulator.stats()
    assert (stats["submits"]["jimeng"], stats["submit_requests"]["jimeng"]) == (1, 1)
    retry_log = next((deployment.home / "logs" / f"dag_id={DAG_ID}").rglob("attempt=2.log")).read_text()
    assert "Resuming jimeng task" in retry_log
