"""Daily budgets on a real deployment (LocalExecutor): a mapped batch larger than its connection's budget makes
exactly the budget's jobs, and the rest fail without retry naming the budget, also when a task process is killed
in the middle of the batch. (The CeleryExecutor profile runs the same batch in test_distributed.py.)"""

from __future__ import annotations

import os
import signal

import pytest

from genmedia_stack import Deployment, wait_until
from tests.deployment.airflow_version import airflow_at_least
from tests.deployment.budget_batch import DAG_ID, TASKS, run_budget_batch
from tests.deployment.conftest import BUDGET


@pytest.mark.compat
def test_a_batch_over_budget_makes_exactly_the_budgets_jobs(deployment: Deployment) -> None:
    run = run_budget_batch(deployment, "novita_budget", f"{TASKS} tasks on a budget, retries=2")

    assert (run.jobs, run.submit_requests) == (BUDGET, BUDGET)
    assert run.outcomes == {("success", 1): BUDGET, ("failed", 1): TASKS - BUDGET}, run.states
    assert run.refused == TASKS - BUDGET


@pytest.mark.compat
def test_a_task_process_killed_mid_batch_never_exceeds_the_budget(deployment: Deployment) -> None:
    def kill_a_running_task(run_id: str) -> str:
        running = wait_until(
            lambda: next(
                (ti for ti in deployment.task_instances(DAG_ID, run_id) if ti["state"] == "running" and ti["pid"]),
                None,
            ),
            60,
            "a task process of the batch to be running",
        )
        os.kill(running["pid"], signal.SIGKILL)
        return f"the task process of restyle[{running['map_index']}]"

    run = run_budget_batch(
        deployment, "novita_budget_kill", f"{TASKS} tasks on a budget, retries=2", kill=kill_a_running_task
    )

    assert run.jobs <= BUDGET
    assert run.submit_requests == run.jobs
    assert sum(run.outcomes.values()) == TASKS
    assert run.outcomes[("success", 1)] >= BUDGET - 1
    assert run.refused >= TASKS - BUDGET - 1
    # Every failure says why (the budget, or the killed try's submit), but on Airflow 3.0 the killed task itself: its
    # supervisor fails a killed task process without retry, and so without a word.
    unexplained = 0 if airflow_at_least("3.1") else 1
    assert run.refused + run.uncertain >= run.failed - unexplained
