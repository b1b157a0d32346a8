"""Vendor faults on a real deployment: rate limits, server errors and uncertain submits never pay twice."""

from __future__ import annotations

from pathlib import Path

from genmedia_emulator.stack import Deployment

FAULTY = "deploy_vendor_faults"
GATEWAY = "deploy_gateway_502"
UNCERTAIN = "deploy_uncertain_submit"
UNCERTAIN_MESSAGE = "may have created a billed job"


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
