"""The budget scenario that runs on both deployment profiles: 20 mapped img2img tasks (``retries=2``) on a connection
that allows 7 jobs a day, optionally with a kill in the middle of the batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from genmedia_stack import Deployment, wait_until
from tests.deployment.conftest import BUDGET, record_scenario

DAG_ID = "deploy_budget"
TASKS = 20
BUDGET_MESSAGE = f"is over its budget: max_jobs_per_day={BUDGET}"
#: What a try says when an earlier try was killed between sending its submit and recording the vendor's answer.
UNCERTAIN_MESSAGE = "may have created a billed job"


@dataclass(frozen=True)
class BudgetRun:
    """What one batch made: the jobs the emulator created, each task's final state and try, and how many task logs
    name the budget, or an uncertain submit of a killed try."""

    jobs: int
    submit_requests: int
    states: dict[tuple[str, int], tuple[str, int]]
    refused: int
    uncertain: int

    @property
    def failed(self) -> int:
        """How many tasks failed."""
        return sum(count for (state, _), count in self.outcomes.items() if state == "failed")

    @property
    def outcomes(self) -> Counter[tuple[str, int]]:
        """How many tasks ended in each ``(state, try_number)``."""
        return Counter(self.states.values())


def run_budget_batch(
    deployment: Deployment, conn_id: str, scenario: str, kill: Callable[[str], str] | None = None
) -> BudgetRun:
    """Trigger the batch on ``conn_id``; ``kill(run_id)`` is called once the first jobs are paid for and says what it
    killed. Returns once the run ended."""
    deployment.emulator.reset()
    deployment.wait_for_dags(DAG_ID)
    deployment.unpause(DAG_ID)
    run_id = deployment.trigger(DAG_ID, conf={"conn_id": conn_id})
    killed = ""
    if kill is not None:
        wait_until(lambda: deployment.emulator.stats()["submits"]["novita"] >= 2, 120, "the first jobs to be paid")
        killed = kill(run_id)
    deployment.wait_for_run(DAG_ID, run_id, timeout=300)
    states = deployment.states(DAG_ID, run_id)
    stats = deployment.emulator.stats()
    run_logs = deployment.task_logs(DAG_ID, f"run_id={run_id}/task_id=restyle/**/*.log")
    logs = [path.read_text(errors="replace") for path in run_logs]
    result = BudgetRun(
        jobs=stats["submits"]["novita"],
        submit_requests=stats["submit_requests"]["novita"],
        states=states,
        refused=sum(BUDGET_MESSAGE in log for log in logs),
        uncertain=sum(UNCERTAIN_MESSAGE in log for log in logs),
    )
    outcomes = ", ".join(
        f"{count} {state} on try {number}" for (state, number), count in sorted(result.outcomes.items())
    )
    record_scenario(
        scenario,
        len(states),
        result.outcomes[("success", 1)],
        result.jobs,
        f"max_jobs_per_day={BUDGET}: {outcomes}; {result.refused} task logs name the budget, {result.uncertain} an "
        "uncertain submit",
        killed=killed,
    )
    return result
