"""The deployment production teams run: CeleryExecutor on PostgreSQL and Redis, two triggerers and two workers that
share no disk (`CeleryDeployment`). Each scenario asserts one submit per task from the emulator's counts, and each
task instance's final state and try number:

1. the example pipelines and a 20-task mapped img2img batch, ``retries=0``: every task succeeds on its first try;
2. a worker's task process killed after its submit: the retry resumes the same vendor task;
3. a whole worker and a triggerer killed while they hold tasks: every task completes, no job is paid twice, and each
   lost task's retry runs on the other worker;
4. vendor faults (30 % 429, 10 % 5xx) across a batch: every task succeeds, one paid job each;
5. the API key is in no log, no ``pg_dump`` of the metadata database and no stored object;
6. a 20-task batch on a connection allowing 7 jobs a day, counted in a ledger on S3: exactly 7 jobs, also with a
   whole worker killed mid-batch.

Below Airflow 3.3 the pay-once record is a file in object storage (S3 here), which a retry on the other worker must
read; from 3.3 on it is in Airflow's ``task_state_store`` and none is written there.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from genmedia_stack import CeleryDeployment, wait_until
from tests.deployment.airflow_version import airflow_at_least
from tests.deployment.budget_batch import TASKS, run_budget_batch
from tests.deployment.conftest import BUDGET, record_scenario
from tests.s3_fixtures import s3_client

pytestmark = pytest.mark.distributed
PIPELINE = "genmedia_img2img_pipeline"
CONTACT_SHEET = "genmedia_contact_sheet"
BATCH_VIDEO = "genmedia_batch_video"
AVATAR = "genmedia_avatar"
BATCH = "distributed_img2img_batch"
WORKER_WAIT = "deploy_worker_wait"  # one video awaited on its worker, retries=1
VIDEO_WAITS = "deploy_video_waits"  # 4 Jimeng and 4 Bailian videos awaited in a triggerer, retries=0
FAULTY = "deploy_vendor_faults"  # 20 Jimeng videos, retries=4, on_uncertain_submit="resubmit"
#: From this Airflow on the pay-once record lives in ``task_state_store``; below it, in object storage.
TASK_STATE_STORE = "3.3"
Runs = dict[str, str]
States = dict[tuple[str, str, int], tuple[str, int]]


def states_of(deployment: CeleryDeployment, runs: Runs) -> States:
    """``{(dag_id, task_id, map_index): (state, try_number)}`` of every task instance of ``runs`` (by DAG id)."""
    return {
        (dag_id, task, index): state
        for dag_id, run_id in runs.items()
        for (task, index), state in deployment.states(dag_id, run_id).items()
    }


def first_try_successes(states: States) -> int:
    """How many task instances succeeded on their first try."""
    return sum(state == ("success", 1) for state in states.values())


def paid(deployment: CeleryDeployment) -> int:
    """The jobs the emulator made (and a vendor would bill) since its last reset."""
    return sum(deployment.emulator.stats()["submits"].values())


def try_hosts(deployment: CeleryDeployment, dag_id: str, run_id: str, task_id: str, index: int = -1) -> list[str]:
    """The machine that ran each try of a task instance, in try order."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{'' if index < 0 else f'/{index}'}/tries"
    tries = deployment.api("GET", path)["task_instances"]
    return [ti["hostname"] for ti in sorted(tries, key=lambda ti: ti["try_number"])]


def submit_records(deployment: CeleryDeployment, dag_id: str, run_ids: list[str]) -> list[dict[str, Any]]:
    """The pay-once records kept in object storage for the task instances of some runs of a DAG."""
    client = s3_client(deployment.s3_endpoint)
    folder = deployment.record_folder.removeprefix(f"s3://{deployment.bucket}/")
    records = []
    for run_id in run_ids:
        prefix = f"{folder}/{dag_id}/{quote(run_id, safe='')}/"
        for item in client.list_objects_v2(Bucket=deployment.bucket, Prefix=prefix).get("Contents", []):
            records.append(json.loads(client.get_object(Bucket=deployment.bucket, Key=item["Key"])["Body"].read()))
    return records


def assert_records_kept_where_this_airflow_keeps_them(
    deployment: CeleryDeployment, dag_id: str, run_ids: list[str]
) -> None:
    """Below Airflow 3.3, one record per run (of a one-task DAG) in object storage, each naming a distinct vendor task
    the emulator made; from 3.3 on, none there (``task_state_store`` holds them)."""
    records = submit_records(deployment, dag_id, run_ids)
    if airflow_at_least(TASK_STATE_STORE):
        assert records == []
    else:
        vendor_tasks = {record["task_id"] for record in records}
        assert len(records) == len(vendor_tasks) == len(run_ids), records
        assert vendor_tasks <= set(deployment.emulator.stats()["tasks"])


def start_runs(deployment: CeleryDeployment, *dag_ids: str, **emulator_settings: Any) -> None:
    """Reset the emulator's counts, apply ``emulator_settings``, and unpause the DAGs once they are parsed."""
    deployment.emulator.reset()
    deployment.emulator.configure(**emulator_settings)
    deployment.wait_for_dags(*dag_ids)
    deployment.unpause(*dag_ids)


def wait_for_runs(deployment: CeleryDeployment, runs: Runs, timeout: float = 300) -> dict[str, str]:
    """Wait until every run ends; their final states by DAG id."""
    return {dag_id: deployment.wait_for_run(dag_id, run_id, timeout=timeout) for dag_id, run_id in runs.items()}


# -- 1. the example pipelines and a 20-task batch ------------------------------------------------------------------


@dataclass(frozen=True)
class Examples:
    """The runs of scenario 1 by DAG id, their final states, and the emulator's counts once they had ended."""

    runs: Runs
    run_states: dict[str, str]
    stats: dict[str, Any]


@pytest.fixture(scope="module")
def examples(celery_deployment: CeleryDeployment) -> Examples:
    """Run the example pipelines (img2img with its contact sheet, batch video, avatar) and the 20-task mapped batch
    at once, publishing to S3, to their ends."""
    deployment = celery_deployment
    start_runs(deployment, PIPELINE, CONTACT_SHEET, AVATAR, BATCH)  # the contact sheet runs on the pipeline's Asset
    deployment.api("POST", "/pools", json={"name": "genmedia_video", "slots": 3, "include_deferred": True})
    conf = {"destination": f"s3://{deployment.bucket}/published"}
    runs = {dag_id: deployment.trigger(dag_id, conf) for dag_id in (PIPELINE, AVATAR)}
    runs[BATCH] = deployment.trigger(BATCH)
    video_conf = conf | {"review_frames": f"s3://{deployment.bucket}/review-frames"}
    runs[BATCH_VIDEO] = deployment.trigger(BATCH_VIDEO, video_conf)
    deployment.unpause(BATCH_VIDEO)  # it has no schedule: this starts no run of its own
    run_states = wait_for_runs(deployment, runs)
    if run_states[PIPELINE] == "success":  # else no Asset event: the failed pipeline's report says why
        runs[CONTACT_SHEET] = wait_until(
            lambda: next((run["dag_run_id"] for run in deployment.runs(CONTACT_SHEET)), None), 60, "a contact sheet"
        )
        run_states[CONTACT_SHEET] = deployment.wait_for_run(CONTACT_SHEET, runs[CONTACT_SHEET])
    stats = deployment.emulator.stats()
    states = states_of(deployment, runs)
    record_scenario(
        "examples and a 20-task batch, retries=0", len(states), first_try_successes(states), paid(deployment)
    )
    return Examples(runs, run_states, stats)


def test_every_example_task_and_every_batch_task_succeeds_on_its_first_try(
    celery_deployment: CeleryDeployment, examples: Examples
) -> None:
    failed = {dag_id: celery_deployment.failure_report(dag_id, examples.runs[dag_id]) for dag_id in examples.runs}
    assert examples.run_states == dict.fromkeys(examples.runs, "success"), failed
    states = states_of(celery_deployment, examples.runs)
    others = {task: state for task, state in states.items() if state != ("success", 1)}
    # The local NSFW model finds the emulator's videos safe: the human review of the flagged ones (Airflow 3.1+) maps
    # over nothing, which Airflow marks skipped.
    assert {task: state for task, state in others.items() if task[1] != "review"} == {}
    assert {state for state, _ in others.values()} <= {"skipped"}
    assert len([task for task in states if task[0] == BATCH]) == 20


def test_one_paid_job_per_generation_task(examples: Examples) -> None:
    # The img2img pipeline 1 and the batch 20 (Novita); the video batch 3 + 3 and the avatar 1 (gpt.ge).
    assert examples.stats["submits"] == {"novita": 21, "jimeng": 3, "bailian": 3, "avatar": 1}
    assert examples.stats["submit_requests"] == examples.stats["submits"]


def test_the_tasks_of_a_run_spread_over_both_workers(celery_deployment: CeleryDeployment, examples: Examples) -> None:
    hosts = Counter(
        ti["hostname"]
        for dag_id, run_id in examples.runs.items()
        for ti in celery_deployment.task_instances(dag_id, run_id)
        if ti["state"] == "success"
    )
    assert set(hosts) == set(celery_deployment.workers), hosts


def test_everything_is_published_to_object_storage_and_nothing_to_a_local_disk(
    celery_deployment: CeleryDeployment, examples: Examples
) -> None:
    client = s3_client(celery_deployment.s3_endpoint)
    listed = client.list_objects_v2(Bucket=celery_deployment.bucket, Prefix="published/")["Contents"]
    keys = [item["Key"] for item in listed]
    # A manifest from the pipeline, the avatar and each of the video batch's 6 videos (in its run's own folder, one
    # per vendor); the contact sheet drawn from the pipeline's manifest, by a task that ran wherever the scheduler
    # sent it.
    assert sum(key.endswith(".manifest.json") for key in keys) == 8, keys
    batch_folder = f"published/{examples.runs[BATCH_VIDEO]}/"
    batch = sorted(key.removeprefix(batch_folder).split("/")[0] for key in keys if key.startswith(batch_folder))
    assert batch == ["jimeng"] * 6 + ["wan"] * 6, keys  # a video and its manifest each
    assert sum(key.endswith(".contact_sheet.png") for key in keys) == 1, keys
    # Where the examples' default destinations (and the pay-once record's default folder) are: each machine's TMPDIR.
    assert [str(path) for path in celery_deployment.root.rglob("genmedia") if path.is_dir()] == []


# -- 2. a task process killed after its submit ---------------------------------------------------------------------


def test_a_task_process_killed_after_its_submit_is_retried_and_resumes_the_paid_task(
    celery_deployment: CeleryDeployment,
) -> None:
    deployment = celery_deployment
    start_runs(deployment, WORKER_WAIT, video_seconds=20)
    run_id = deployment.trigger(WORKER_WAIT)

    def waiting() -> dict[str, Any] | None:
        ti = deployment.task_instances(WORKER_WAIT, run_id)[0]
        submitted = deployment.emulator.stats()["submits"]["jimeng"] == 1
        return ti if submitted and ti["state"] == "running" and ti["pid"] else None

    victim = wait_until(waiting, 90, "the task to submit and wait on its worker")
    os.kill(victim["pid"], signal.SIGKILL)

    run_state = deployment.wait_for_run(WORKER_WAIT, run_id, timeout=120)
    states = deployment.states(WORKER_WAIT, run_id)
    hosts = try_hosts(deployment, WORKER_WAIT, run_id, "jimeng")
    stats = deployment.emulator.stats()
    record_scenario(
        "task process SIGKILL after its submit, retries=1",
        len(states),
        sum(state == ("success", 1) for state in states.values()),
        stats["submits"]["jimeng"],
        " then ".join(f"try {number} on {host}" for number, host in enumerate(hosts, start=1)),
        killed=f"the task process on {victim['hostname']}",
    )
    assert run_state == "success", deployment.failure_report(WORKER_WAIT, run_id)
    assert states == {("jimeng", -1): ("success", 2)}
    assert (stats["submits"]["jimeng"], stats["submit_requests"]["jimeng"]) == (1, 1)
    assert hosts[0] == victim["hostname"] and set(hosts) <= set(deployment.workers)
    (retry_log,) = deployment.task_logs(WORKER_WAIT, "task_id=jimeng/attempt=2.log")
    assert deployment.machines[hosts[1]].root in retry_log.parents  # written on the disk of the worker that ran it
    assert "Resuming jimeng task" in retry_log.read_text()
    assert_records_kept_where_this_airflow_keeps_them(deployment, WORKER_WAIT, [run_id])


# -- 3. a whole worker and a triggerer lost ------------------------------------------------------------------------


def test_a_worker_and_a_triggerer_killed_mid_run_lose_no_task_and_pay_no_job_twice(
    celery_deployment: CeleryDeployment,
) -> None:
    deployment = celery_deployment
    start_runs(deployment, WORKER_WAIT, VIDEO_WAITS, video_seconds=30)
    held_runs = [deployment.trigger(WORKER_WAIT) for _ in range(4)]
    video_run = deployment.trigger(VIDEO_WAITS)

    def everything_waits() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """Every job paid for, the 4 worker waits running, the 8 triggers each held by a triggerer."""
        held = [ti for run_id in held_runs for ti in deployment.task_instances(WORKER_WAIT, run_id)]
        deferred = deployment.deferred(VIDEO_WAITS, video_run)
        ready = paid(deployment) == 12 and len(deferred) == 8 and all(ti["triggerer_job"] for ti in deferred)
        return (held, deferred) if ready and all(ti["state"] == "running" for ti in held) else None

    held, deferred = wait_until(everything_waits, 120, "4 tasks waiting on workers and 8 in triggerers")
    worker = Counter(ti["hostname"] for ti in held).most_common(1)[0][0]
    triggerer = Counter(ti["triggerer_job"]["hostname"] for ti in deferred).most_common(1)[0][0]
    lost = {ti["dag_run_id"] for ti in held if ti["hostname"] == worker}
    deployment.kill_component(worker)  # SIGKILL to the worker and every process it started: a machine gone
    deployment.kill_component(triggerer)

    runs = [(WORKER_WAIT, run_id) for run_id in held_runs] + [(VIDEO_WAITS, video_run)]
    run_states = {run_id: deployment.wait_for_run(dag_id, run_id, timeout=240) for dag_id, run_id in runs}
    held_states = {run_id: deployment.states(WORKER_WAIT, run_id)[("jimeng", -1)] for run_id in held_runs}
    video_states = deployment.states(VIDEO_WAITS, video_run)
    retried_on = {run_id: tuple(try_hosts(deployment, WORKER_WAIT, run_id, "jimeng")[1:]) for run_id in lost}
    retry_hosts = ", ".join(sorted({host for hosts in retried_on.values() for host in hosts}))
    moved = sum(ti["triggerer_job"]["hostname"] == triggerer for ti in deferred)
    stats = deployment.emulator.stats()
    every = [*held_states.values(), *video_states.values()]
    record_scenario(
        "a worker and a triggerer SIGKILLed mid-run, retries=1 on the worker waits",
        len(every),
        every.count(("success", 1)),
        paid(deployment),
        f"{len(lost)} worker waits lost with {worker}, retried on {retry_hosts}; "
        f"{moved} triggers moved from {triggerer}",
        killed=f"{worker} (whole worker) and {triggerer}",
    )
    deployment.start_component("celery-worker", worker)  # back, for the scenarios after this one
    deployment.start_component("triggerer", triggerer)
    deployment.wait_until_healthy()
    assert run_states == dict.fromkeys(run_states, "success"), [deployment.failure_report(*run) for run in runs]
    assert held_states == {run_id: ("success", 2 if run_id in lost else 1) for run_id in held_runs}
    assert video_states == dict.fromkeys(video_states, ("success", 1))
    (other,) = set(deployment.workers) - {worker}
    assert retried_on == dict.fromkeys(lost, (other,))
    assert (stats["submits"]["jimeng"], stats["submits"]["bailian"]) == (8, 4)
    assert stats["submit_requests"] == stats["submits"]
    for retry_log in deployment.task_logs(WORKER_WAIT, "task_id=jimeng/attempt=2.log"):
        assert "Resuming jimeng task" in retry_log.read_text()
    assert_records_kept_where_this_airflow_keeps_them(deployment, WORKER_WAIT, held_runs)


# -- 4. vendor faults ----------------------------------------------------------------------------------------------


def test_vendor_faults_across_a_batch_still_pay_one_job_per_task(celery_deployment: CeleryDeployment) -> None:
    deployment = celery_deployment
    faults = {"rate_limit": {"rate": 0.3}, "server_error": {"rate": 0.1}, "random_seed": 11, "latency": 0.05}
    start_runs(deployment, FAULTY, video_seconds=2, **faults)
    run_id = deployment.trigger(FAULTY)
    run_state = deployment.wait_for_run(FAULTY, run_id, timeout=300)

    states = deployment.states(FAULTY, run_id)
    stats = deployment.emulator.stats()
    record_scenario(
        "vendor faults: 30 % 429, 10 % 5xx, retries=4",
        len(states),
        sum(state == ("success", 1) for state in states.values()),
        stats["submits"]["jimeng"],
        ", ".join(f"{count} {fault}" for fault, count in stats["faults"].items() if count),
        faults=sum(stats["faults"].values()),
    )
    assert run_state == "success", deployment.failure_report(FAULTY, run_id)
    assert len(states) == 20
    assert {state for state, _ in states.values()} == {"success"}
    assert stats["submits"]["jimeng"] == 20  # the emulator makes no job on a 429 or a 5xx
    assert stats["faults"]["rate_limit"] > 0 and stats["faults"]["server_error"] > 0


# -- 5. the key ----------------------------------------------------------------------------------------------------


def test_the_api_key_is_in_no_log_no_database_dump_and_no_stored_object(
    celery_deployment: CeleryDeployment, examples: Examples
) -> None:
    key = celery_deployment.emulator.api_key.encode()
    files = [path for path in celery_deployment.root.rglob("*") if path.is_file()]
    for worker in celery_deployment.workers:  # task logs on each worker's own disk
        assert any(celery_deployment.machines[worker].root in path.parents for path in files if ".log" in path.name)
    assert any(".log.trigger." in path.name for path in files)
    dump = celery_deployment.metadata_dump()
    assert PIPELINE.encode() in dump and b"COPY public.task_instance" in dump
    client = s3_client(celery_deployment.s3_endpoint)
    listed = client.list_objects_v2(Bucket=celery_deployment.bucket).get("Contents", [])
    objects = {
        item["Key"]: client.get_object(Bucket=celery_deployment.bucket, Key=item["Key"])["Body"].read()
        for item in listed
    }
    assert objects
    assert [str(path) for path in files if key in path.read_bytes()] == []
    assert key not in dump
    assert [name for name, body in objects.items() if key in body] == []


# -- 6. daily budgets counted on S3 --------------------------------------------------------------------------------


def test_a_batch_over_budget_makes_exactly_the_budgets_jobs_across_workers(celery_deployment: CeleryDeployment) -> None:
    run = run_budget_batch(celery_deployment, "novita_budget", f"{TASKS} tasks on a budget over 2 workers, retries=2")

    assert (run.jobs, run.submit_requests) == (BUDGET, BUDGET)
    assert run.outcomes == {("success", 1): BUDGET, ("failed", 1): TASKS - BUDGET}, run.states
    assert run.refused == TASKS - BUDGET
    ledger = celery_deployment.ledger_folder.removeprefix(f"s3://{celery_deployment.bucket}/")
    listed = s3_client(celery_deployment.s3_endpoint).list_objects_v2(
        Bucket=celery_deployment.bucket, Prefix=f"{ledger}/novita_budget/"
    )
    assert len(listed.get("Contents", [])) == BUDGET


def test_a_worker_killed_mid_batch_never_exceeds_the_budget(celery_deployment: CeleryDeployment) -> None:
    deployment = celery_deployment
    worker = deployment.workers[0]

    def kill_a_worker(run_id: str) -> str:
        deployment.kill_component(worker)  # SIGKILL to the worker and every task process it started
        return f"{worker} (whole worker)"

    try:
        run = run_budget_batch(
            deployment, "novita_budget_kill", f"{TASKS} tasks on a budget over 2 workers, retries=2", kill=kill_a_worker
        )
    finally:
        deployment.start_component("celery-worker", worker)
        deployment.wait_until_healthy()

    assert run.jobs <= BUDGET
    assert run.submit_requests == run.jobs
    assert sum(run.outcomes.values()) == TASKS
    # Every task but those with a job and those whose killed try left an uncertain submit (a whole worker can hold
    # several at once) was refused by the budget.
    assert run.refused >= TASKS - BUDGET - run.uncertain
    assert run.refused + run.uncertain >= run.failed  # every failure says why: the budget, or the killed try's submit
