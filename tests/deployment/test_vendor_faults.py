"""Vendor faults on a real deployment: rate limits, server errors, uncertain submits and outages never pay twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genmedia_emulator.stack import Deployment, wait_until
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
#: Each job runs for this long; the outage starts once its wait has polled, so in the middle of the job.
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


def run_through_outage(deployment: Deployment, dag_id: str, outage_seconds: float) -> str:
    """Run ``dag_id``'s one job; once its wait has polled the vendor, every poll answers 502 for ``outage_seconds``.
    Return the run id once the run ended."""
    deployment.emulator.reset()
    deployment.emulator.configure(video_seconds=JOB_SECONDS)
    deployment.wait_for_dags(dag_id)
    deployment.unpause(dag_id)
    run_id = deployment.trigger(dag_id)
    wait_until(lambda: deployment.emulator.stats()["polls"]["jimeng"] > 0, 90, "the wait to poll the vendor")
    deployment.emulator.configure(poll_outage_seconds=outage_seconds)
    deployment.wait_for_run(dag_id, run_id, timeout=outage_seconds + 150)
    return run_id


def outage_lines(deployment: Deployment, dag_id: str) -> list[str]:
    """The trigger log lines that tell of failed polls and of polling that recovered."""
    lines = deployment.trigger_logs(dag_id).splitlines()
    return [line for line in lines if "Polling jimeng task" in line or "max_outage_seconds" in line]


@pytest.mark.compat
def test_a_90_s_vendor_outage_is_ridden_out_on_the_first_try(deployment: Deployment) -> None:
    run_id = run_through_outage(deployment, OUTAGE, outage_seconds=90)

    states = deployment.states(OUTAGE, run_id)
    stats = deployment.emulator.stats()
    lines = outage_lines(deployment, OUTAGE)
    print("\n".join(["the trigger's lines of the outage:", *lines]))
    record_scenario(
        "502 to every poll for 90 s mid-job",
        len(states),
        sum(state == ("success", 1) for state in states.values()),
        stats["submits"]["jimeng"],
        f"{stats['faults']['poll_outage']} polls answered 502",
        faults=stats["faults"]["poll_outage"],
    )
    assert states == {("jimeng", -1): ("success", 1)}, deployment.failure_report(OUTAGE, run_id)
    assert stats["submits"]["jimeng"] == 1
    assert 5 <= stats["faults"]["poll_outage"] <= 15  # backing off, not 180 polls at the DAG's 0.5 s interval
    assert [line for line in lines if "failed (HTTP 502" in line] == lines[:1]  # one line for the whole outage
    assert len([line for line in lines if "recovered after" in line]) == 1
    assert deployment.emulator.api_key not in deployment.trigger_logs(OUTAGE)


@pytest.mark.compat
def test_an_outage_past_the_budget_ends_the_wait_and_the_retry_resumes_the_paid_task(deployment: Deployment) -> None:
    extra = {"max_outage_seconds": SHORT_OUTAGE_BUDGET}
    connection = {"connection_id": SHORT_OUTAGE_CONN, "conn_type": "gptge", "extra": json.dumps(extra)}
    connection |= {"host": deployment.emulator.url, "password": deployment.emulator.api_key}
    deployment.api("POST", "/connections", json=connection)

    run_id = run_through_outage(deployment, PAST_BUDGET, outage_seconds=SHORT_OUTAGE_BUDGET + 5)

    states = deployment.states(PAST_BUDGET, run_id)
    stats = deployment.emulator.stats()
    first_log = task_log(deployment, PAST_BUDGET, "jimeng", 1)
    retry_log = task_log(deployment, PAST_BUDGET, "jimeng", 2)
    replayed = EARLIER_TRY_EVENT in retry_log
    record_scenario(
        f"502 to every poll for {SHORT_OUTAGE_BUDGET + 5} s, max_outage_seconds={SHORT_OUTAGE_BUDGET}, retries=1",
        len(states),
        sum(state == ("success", 1) for state in states.values()),
        stats["submits"]["jimeng"],
        ", ".join(f"{task} {state} on try {number}" for (task, _), (state, number) in states.items())
        + ("; the retry was handed try 1's event and started afresh" if replayed else ""),
        faults=stats["faults"]["poll_outage"],
    )
    assert states == {("jimeng", -1): ("success", 2)}, deployment.failure_report(PAST_BUDGET, run_id)
    assert (stats["submits"]["jimeng"], stats["submit_requests"]["jimeng"]) == (1, 1)
    assert f"past the connection's max_outage_seconds ({SHORT_OUTAGE_BUDGET} s)" in first_log
    assert "Resuming jimeng task" in retry_log
    # Airflow 3.0 starts the retry at execute_complete with try 1's event (apache/airflow#56704); 3.1+ at execute.
    assert replayed is not airflow_at_least("3.1")
