"""Vendor faults on a real deployment: rate limits, server errors, uncertain submits and outages never pay twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genmedia_stack import Deployment, wait_until
from tests.deployment.airflow_version import airflow_at_least
from tests.deployment.conftest import record_scenario

FAULTY = "deploy_vendor_faults"
GATEWAY = "deploy_gateway_502"
UNCERTAIN = "deploy_uncertain_submit"
UNCERTAIN_MESSAGE = "may have created a billed job"
OUTAGE = "deploy_poll_outage"
PAST_BUDGET = "deploy_outage_past_budget"
#: The connection of PAST_BUDGET's task (deployment_dags.py), with an outage budget shorter than the outage.
SHORT_OUTAGE_CONN, SHORT_OUTAGE_BUDGET = "gptge_short_outage", 20
#: Each job runs for this long; an outage starts once its wait has polled, so in the middle of the job.
JOB_SECONDS = 20
EARLIER_TRY_EVENT = "Resumed with the trigger event of try 1"


def run_to_end(deployment: Deployment, dag_id: str, **emulator_settings: object) -> str:
    deployment.emulator.reset()
    deployment.emulator.configure(**emulator_settings)
    deployment.wait_for_dags(dag_id)
    deployment.unpause(dag_id)
    run_id = deployment.trigger(dag_id)
    deployment.wait_for_run(dag_id, run_id, timeout=300)
    return run_id


def task_log(deployment: Deployment, dag_id: str, task_id: str, attempt: int) -> str:
    folder: Path = deployment.home / "logs" / f"dag_id={dag_id}"
    return next(folder.rglob(f"task_id={task_id}/attempt={attempt}.log")).read_text()


def test_rate_limits_server_errors_and_latency_still_pay_once_per_task(deployment: Deployment) -> None:
    run_id = run_to_end(
        deployment,
        FAULTY,
        video_seconds=2,
        latency=0.05,
        rate_limit={"rate": 0.3},
        server_error={"rate": 0.1},
        random_seed=11,
    )

    states = deployment.states(FAULTY, run_id)
    stats = deployment.emulator.stats()
    first_try = sum(1 for state, try_number in states.values() if try_number == 1)
    print(
        f"tasks={len(states)} first-try successes={first_try} submits={stats['submits']['jimeng']} "
        f"submit requests={stats['submit_requests']['jimeng']} faults={stats['faults']}"
    )
    assert len(states) == 20
    assert {state for state, _ in states.values()} == {"success"}
    assert stats["submits"]["jimeng"] == 20  # the emulator makes no job on a 429 or a 5xx
    assert stats["faults"]["rate_limit"] > 0 and stats["faults"]["server_error"] > 0


def test_a_gateway_502_on_submit_fails_without_retry_and_says_why(deployment: Deployment) -> None:
    run_id = run_to_end(deployment, GATEWAY, server_error={"next": 1}, server_error_statuses=[502])

    assert deployment.states(GATEWAY, run_id) == {("jimeng", -1): ("failed", 1)}  # retries=2 were not used
    stats = deployment.emulator.stats()
    assert (stats["submit_requests"]["jimeng"], stats["submits"]["jimeng"]) == (1, 0)
    log = task_log(deployment, GATEWAY, "jimeng", 1)
    assert UNCERTAIN_MESSAGE in log and "HTTP 502" in log and "on_uncertain_submit='resubmit'" in log


def test_a_submit_cut_after_the_job_was_made_fails_or_resubmits_as_asked(deployment: Deployment) -> None:
    run_id = run_to_end(deployment, UNCERTAIN, submit_cut={"next": 2})

    assert deployment.states(UNCERTAIN, run_id) == {
        ("fail", -1): ("failed", 1),
        ("resubmit", -1): ("success", 2),
    }
    stats = deployment.emulator.stats()
    assert stats["submits"]["jimeng"] == 3  # both cut submits made a job; only "resubmit" paid again, once
    assert UNCERTAIN_MESSAGE in task_log(deployment, UNCERTAIN, "fail", 1)
    assert "submitting again as on_uncertain_submit='resubmit' asks" in task_log(deployment, UNCERTAIN, "resubmit", 2)


def outage_lines(deployment: Deployment, dag_id: str, api: str) -> list[str]:
    """The trigger log lines of a DAG that tell of failed polls and of polling that recovered."""
    lines = deployment.trigger_logs(dag_id).splitlines()
    return [line for line in lines if f"Polling {api} task" in line or "max_outage_seconds" in line]


def tries(states: dict[tuple[str, int], tuple[str, int]]) -> str:
    """``wan success on try 2``, for each task of a run."""
    return ", ".join(f"{task} {state} on try {number}" for (task, _), (state, number) in states.items())


@pytest.mark.compat
def test_a_vendor_outage_is_ridden_out_and_one_past_its_budget_is_resumed_by_the_retry(
    deployment: Deployment,
) -> None:
    """Two jobs at once (one test, so that the two outages run side by side), each meeting an outage of its API's
    polls once its wait has polled: Jimeng's polls answer 502 for 90 s, which the wait rides out within the default
    budget on try 1; Bailian's for 25 s on a connection whose ``max_outage_seconds`` is 20, so the wait ends in error
    and the retry resumes the job."""
    extra = json.dumps({"max_outage_seconds": SHORT_OUTAGE_BUDGET})
    connection = {"connection_id": SHORT_OUTAGE_CONN, "conn_type": "gptge", "extra": extra}
    connection |= {"host": deployment.emulator.url, "password": deployment.emulator.api_key}
    deployment.api("POST", "/connections", json=connection)
    deployment.emulator.reset()
    deployment.emulator.configure(video_seconds=JOB_SECONDS)
    deployment.wait_for_dags(OUTAGE, PAST_BUDGET)
    deployment.unpause(OUTAGE, PAST_BUDGET)
    runs = {dag_id: deployment.trigger(dag_id) for dag_id in (OUTAGE, PAST_BUDGET)}
    polled = deployment.emulator.stats
    wait_until(lambda: min(polled()["polls"][api] for api in ("jimeng", "bailian")) > 0, 90, "both waits to poll")
    deployment.emulator.configure(poll_outage_seconds=90, poll_outage_apis=["jimeng"])
    deployment.emulator.configure(poll_outage_seconds=SHORT_OUTAGE_BUDGET + 5, poll_outage_apis=["bailian"])
    for dag_id, run_id in runs.items():
        deployment.wait_for_run(dag_id, run_id, timeout=240)

    ridden, resumed = (deployment.states(dag_id, run_id) for dag_id, run_id in runs.items())
    stats = deployment.emulator.stats()
    lines = outage_lines(deployment, OUTAGE, "jimeng")
    retry_log = task_log(deployment, PAST_BUDGET, "wan", 2)
    replayed = EARLIER_TRY_EVENT in retry_log
    print("\n".join(["the trigger's lines of the 90 s outage:", *lines]))
    record_scenario(
        "502 to every poll for 90 s mid-job",
        len(ridden),
        sum(state == ("success", 1) for state in ridden.values()),
        stats["submits"]["jimeng"],
        tries(ridden),
    )
    record_scenario(
        f"502 to every poll for {SHORT_OUTAGE_BUDGET + 5} s, max_outage_seconds={SHORT_OUTAGE_BUDGET}, retries=1",
        len(resumed),
        sum(state == ("success", 1) for state in resumed.values()),
        stats["submits"]["bailian"],
        tries(resumed) + ("; the retry was handed try 1's event and started afresh" if replayed else ""),
    )
    assert ridden == {("jimeng", -1): ("success", 1)}, deployment.failure_report(OUTAGE, runs[OUTAGE])
    assert resumed == {("wan", -1): ("success", 2)}, deployment.failure_report(PAST_BUDGET, runs[PAST_BUDGET])
    assert [stats["submit_requests"][api] for api in ("jimeng", "bailian")] == [1, 1]
    assert [stats["submits"][api] for api in ("jimeng", "bailian")] == [1, 1]
    # The waits backed off: not the 180 + 50 polls of the DAGs' 0.5 s interval.
    assert stats["faults"]["poll_outage"] <= 30
    assert [line for line in lines if "failed (HTTP 502" in line] == lines[:1]  # one line for the whole outage
    assert len([line for line in lines if "recovered after" in line]) == 1
    assert deployment.emulator.api_key not in deployment.trigger_logs(OUTAGE)
    budget = f"past the connection's max_outage_seconds ({SHORT_OUTAGE_BUDGET} s)"
    assert budget in task_log(deployment, PAST_BUDGET, "wan", 1)
    assert "Resuming bailian task" in retry_log
    # Airflow 3.0 starts the retry at execute_complete with try 1's event (apache/airflow#56704); 3.1+ at execute.
    assert replayed is not airflow_at_least("3.1")
