"""The example DAGs, a mapped batch and a sensor on a real deployment: every task succeeds on its first try.

The img2img pipeline runs first and alone, so that the emulator's counts show its own submits; then everything else
at once. Also checks that the API key is nowhere in what the deployment wrote: task and trigger logs, the
components' own output, and the metadata database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from genmedia_stack import Deployment, wait_until
from tests.deployment.airflow_version import airflow_at_least, requires_airflow
from tests.deployment.conftest import record_scenario

pytestmark = pytest.mark.compat
PIPELINE = "genmedia_img2img_pipeline"
EXAMPLES = (PIPELINE, "genmedia_contact_sheet", "genmedia_batch_video", "genmedia_avatar")
MAPPED = "deploy_img2img_mapped"
SENSOR = "deploy_sensor"
#: A sensor with templated arguments starts in the triggerer from this Airflow on.
SENSOR_STARTS_IN_TRIGGERER = "3.3"
#: The example DAGs whose videos the local NSFW model scores, with a human review of the flagged ones from 3.1 on.
BATCH_VIDEO = "genmedia_batch_video"
REVIEWED_VIDEOS = (BATCH_VIDEO, "genmedia_avatar")
HUMAN_REVIEW = "3.1"


@dataclass(frozen=True)
class Runs:
    """The module's DAG runs, by DAG id, what the sensor looked like while it waited, the emulator's counts once the
    img2img pipeline, run alone, had ended, and the folder the examples published into."""

    run_ids: dict[str, str]
    waiting_sensor: dict[str, Any]
    pipeline_stats: dict[str, Any]
    published: Path


@pytest.fixture(scope="module")
def runs(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Run the img2img pipeline alone, then every other example DAG, the 10-task mapped img2img DAG and the sensor
    DAG at once, to their ends."""
    deployment.wait_for_dags(*EXAMPLES, MAPPED, SENSOR)
    deployment.api("POST", "/pools", json={"name": "genmedia_video", "slots": 3, "include_deferred": True})
    published = tmp_path_factory.mktemp("published")
    destination = published.as_uri()
    deployment.unpause(PIPELINE)  # the contact sheet, unpaused from the start, runs on what the pipeline publishes
    run_ids = {PIPELINE: deployment.trigger(PIPELINE, {"destination": destination})}
    pipeline_state = deployment.wait_for_run(PIPELINE, run_ids[PIPELINE], timeout=120)
    pipeline_stats = deployment.emulator.stats()
    states = deployment.states(PIPELINE, run_ids[PIPELINE])
    first_try = sum(state == ("success", 1) for state in states.values())
    submits = sum(pipeline_stats["submits"].values())
    record_scenario("img2img pipeline, retries=0", len(states), first_try, submits)
    # Nothing published, no contact sheet to wait for: say why now.
    assert pipeline_state == "success", deployment.failure_report(PIPELINE, run_ids[PIPELINE])
    deployment.unpause(BATCH_VIDEO, "genmedia_avatar", MAPPED, SENSOR)
    run_ids |= {
        BATCH_VIDEO: deployment.trigger(BATCH_VIDEO, {"destination": destination}),
        "genmedia_avatar": deployment.trigger("genmedia_avatar", {"destination": destination}),
        MAPPED: deployment.trigger(MAPPED),
        SENSOR: deployment.trigger(SENSOR),
    }
    waiting_sensor: dict[str, Any] = {}
    if airflow_at_least(SENSOR_STARTS_IN_TRIGGERER):  # before, it checks once on a worker and may be done at once
        waiting_sensor = wait_until(
            lambda: next((ti for ti in deployment.deferred(SENSOR, run_ids[SENSOR]) if ti["task_id"] == "wait"), None),
            60,
            "the sensor to wait in the triggerer",
        )
    run_ids["genmedia_contact_sheet"] = wait_until(  # started by the scheduler, on the pipeline's Asset event
        lambda: next((run["dag_run_id"] for run in deployment.runs("genmedia_contact_sheet")), None),
        120,
        "a run of genmedia_contact_sheet",
    )
    for dag_id, run_id in run_ids.items():
        deployment.wait_for_run(dag_id, run_id, timeout=240)
    return Runs(run_ids, waiting_sensor, pipeline_stats, published)


def test_the_img2img_pipeline_succeeds_on_its_first_try_with_one_submit(deployment: Deployment, runs: Runs) -> None:
    states = deployment.states(PIPELINE, runs.run_ids[PIPELINE])
    retries = {task["task_id"]: task["retries"] for task in deployment.api("GET", f"/dags/{PIPELINE}/tasks")["tasks"]}
    assert retries == {"restyle": 0, "nsfw_filter": 0, "publish": 0}
    assert {task: state for task, state in states.items() if state != ("success", 1)} == {}
    paid = {api: count for api, count in runs.pipeline_stats["submits"].items() if count}
    assert (paid, runs.pipeline_stats["submit_requests"]["novita"]) == ({"novita": 1}, 1)


def test_every_task_succeeds_on_its_first_try(deployment: Deployment, runs: Runs) -> None:
    states = {dag_id: deployment.states(dag_id, run_id) for dag_id, run_id in runs.run_ids.items()}
    every = [state for dag_states in states.values() for state in dag_states.values()]
    submits = sum(deployment.emulator.stats()["submits"].values())
    record_scenario("every example, a 10-task map and a sensor", len(every), every.count(("success", 1)), submits)
    for dag_id, dag_states in states.items():
        assert dag_states, dag_id
        others = {task: state for task, state in dag_states.items() if state != ("success", 1)}
        # The local NSFW model finds the emulator's videos safe: nothing is set aside, and the human review (Airflow
        # 3.1+) maps over nothing, which Airflow marks skipped.
        assert {task: state for task, state in others.items() if task != ("review", -1)} == {}, dag_id
        if dag_id in REVIEWED_VIDEOS and airflow_at_least(HUMAN_REVIEW):
            assert others[("review", -1)][0] == "skipped", dag_id
    assert len(states[MAPPED]) == 10


def test_one_paid_job_per_generation_task(deployment: Deployment, runs: Runs) -> None:
    # img2img pipeline 1 + mapped 10 (Novita); batch video 3 + 3 and the sensor DAG's submit 1 (gpt.ge).
    stats = deployment.emulator.stats()
    assert stats["submits"] == {"novita": 11, "jimeng": 4, "bailian": 3, "avatar": 1}
    assert stats["submit_requests"] == stats["submits"]


def test_unpausing_the_batch_started_no_run_and_its_run_published_into_its_own_folder(
    deployment: Deployment, runs: Runs
) -> None:
    run_id = runs.run_ids[BATCH_VIDEO]
    assert [run["dag_run_id"] for run in deployment.runs(BATCH_VIDEO)] == [run_id]
    manifests = (runs.published / run_id).rglob("*.manifest.json")
    assert sorted(manifest.parent.name for manifest in manifests) == ["jimeng"] * 3 + ["wan"] * 3


def test_trigger_logs_follow_each_vendor_task_by_its_own_id(deployment: Deployment, runs: Runs) -> None:
    logs = deployment.trigger_logs(MAPPED)
    tasks = deployment.emulator.stats()["tasks"]
    vendor_tasks = [task_id for task_id, task in tasks.items() if task["api"] == "novita"]
    mapped = [task_id for task_id in vendor_tasks if f"novita task {task_id} is " in logs]
    assert len(mapped) == 10
    assert all(f"novita task {task_id} is succeeded" in logs for task_id in mapped)
    assert "task_id=restyle" not in logs and "HTTP 404" not in logs


@requires_airflow(SENSOR_STARTS_IN_TRIGGERER, "A sensor starting in the triggerer with templated arguments")
def test_a_deferrable_sensor_waits_without_ever_taking_a_worker_slot(deployment: Deployment, runs: Runs) -> None:
    waiting = runs.waiting_sensor
    assert (waiting["state"], waiting["try_number"]) == ("deferred", 1)
    assert waiting["pid"] is None and not waiting["hostname"]  # the scheduler handed it straight to a triggerer
    final = {ti["task_id"]: ti for ti in deployment.task_instances(SENSOR, runs.run_ids[SENSOR])}
    assert (final["wait"]["state"], final["wait"]["try_number"]) == ("success", 1)
    assert final["wait_from_worker"]["state"] == "success"


def test_the_api_key_appears_nowhere(deployment: Deployment, runs: Runs) -> None:
    key = deployment.emulator.api_key.encode()
    files = list(deployment.log_files())
    assert any(path.name.endswith(".log") and ".trigger." in path.name for path in files)
    assert [str(path) for path in files if key in path.read_bytes()] == []
    dump = deployment.metadata_dump()
    assert PIPELINE.encode() in dump and b"COPY public.xcom" in dump
    assert key not in dump
