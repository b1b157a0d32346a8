"""A job and a sensor end in the triggerer once the vendor task succeeded: the job after one worker run (its submit),
the sensor without any; a vendor failure still resumes on a worker and fails there without retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from genmedia_stack import Deployment
from tests.deployment.airflow_version import airflow_at_least
from tests.deployment.conftest import record_scenario
from tests.deployment.observe import worker_runs

pytestmark = pytest.mark.compat
DAG_ID = "deploy_end_in_triggerer"
FAILURE = "deploy_vendor_failure"
#: A sensor with templated arguments starts in the triggerer from this Airflow on (before, one check on a worker).
SENSOR_STARTS_IN_TRIGGERER = "3.3"


@dataclass(frozen=True)
class Run:
    """The run of `DAG_ID` and what the emulator knew once it had ended."""

    run_id: str
    stats: dict[str, Any]


@pytest.fixture(scope="module")
def run(deployment: Deployment) -> Run:
    deployment.emulator.reset()
    deployment.wait_for_dags(DAG_ID, FAILURE)
    deployment.unpause(DAG_ID)
    run_id = deployment.trigger(DAG_ID)
    state = deployment.wait_for_run(DAG_ID, run_id, timeout=120)
    assert state == "success", deployment.failure_report(DAG_ID, run_id)
    return Run(run_id, deployment.emulator.stats())


def xcom(deployment: Deployment, run_id: str, task_id: str, key: str) -> Any:
    """An XCom's value as stored: a mapping stays a mapping (Airflow's own push of a `TaskSuccessEvent`'s XComs
    would have stored its JSON text, which a downstream task reads as a string)."""
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
    return deployment.api("GET", path)["value"]


def ended_at(deployment: Deployment, run_id: str, task_id: str) -> float:
    ti = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")
    return datetime.fromisoformat(ti["end_date"]).timestamp()


def test_the_job_ends_in_the_triggerer_after_one_worker_run(deployment: Deployment, run: Run) -> None:
    states = deployment.states(DAG_ID, run.run_id)
    runs = worker_runs(deployment, DAG_ID, run.run_id)
    novita = [(key, task) for key, task in run.stats["tasks"].items() if task["api"] == "novita"]
    (vendor_id, vendor_task), *others = novita
    lag = ended_at(deployment, run.run_id, "restyle") - vendor_task["finished_at"]
    record_scenario(
        "img2img job ended in the triggerer",
        1,
        int(states[("restyle", -1)] == ("success", 1)),
        run.stats["submits"]["novita"],
        f"{runs[('restyle', -1)]} worker run(s), {vendor_task['polls']} polls, result {lag:.1f} s after the vendor",
    )
    assert others == []
    assert states[("restyle", -1)] == ("success", 1)
    assert runs[("restyle", -1)] == 1
    assert (run.stats["submits"]["novita"], run.stats["submit_requests"]["novita"]) == (1, 1)

    result = xcom(deployment, run.run_id, "restyle", "return_value")
    assert (result["status"], result["task_id"], len(result["outputs"])) == ("succeeded", vendor_id, 1)
    # Completed as execute_complete did: the request's prompt and model, the base64 image elided.
    assert (result["prompt"], result["model"]) == ("a watercolor teapot", "sd_xl_base_1.0.safetensors")
    assert result["request"]["request"]["image_base64"].startswith("<")
    assert xcom(deployment, run.run_id, "restyle", "genmedia_task_id") == vendor_id
    links = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/restyle/links")
    assert links["extra_links"]["First output"] == result["outputs"][0]["url"]
    # A downstream task reads the result as a mapping, as it does after a worker run.
    assert xcom(deployment, run.run_id, "read_job", "return_value") == f"novita task {vendor_id}: succeeded"


def test_the_sensor_ends_in_the_triggerer(deployment: Deployment, run: Run) -> None:
    states = deployment.states(DAG_ID, run.run_id)
    runs = worker_runs(deployment, DAG_ID, run.run_id)
    # Before 3.3 its templated task id is rendered by one check on a worker, then it defers from there.
    expected_runs = 0 if airflow_at_least(SENSOR_STARTS_IN_TRIGGERER) else 1
    assert (states[("wait", -1)], runs[("wait", -1)]) == (("success", 1), expected_runs)
    vendor_id = xcom(deployment, run.run_id, "submit", "genmedia_task_id")
    result = xcom(deployment, run.run_id, "wait", "return_value")
    assert (result["status"], result["task_id"], result["api"]) == ("succeeded", vendor_id, "jimeng")
    links = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/wait/links")
    assert links["extra_links"]["First output"] == result["outputs"][0]["url"]
    assert xcom(deployment, run.run_id, "read_sensor", "return_value") == f"jimeng task {vendor_id}: succeeded"


def test_the_happy_path_logs_no_error_and_fires_short_events(deployment: Deployment, run: Run) -> None:
    folder = deployment.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run.run_id}"
    task_logs = "\n".join(path.read_text(errors="replace") for path in sorted(folder.rglob("*.log*")))
    assert '"level":"error"' not in task_logs
    scheduler = "\n".join(path.read_text(errors="replace") for path in deployment.logs.glob("scheduler*.log"))
    assert "XCom not found" not in scheduler
    fired = [
        line
        for path in [*deployment.logs.glob("triggerer*.log"), *folder.rglob("*.log.trigger.*")]
        for line in path.read_text(errors="replace").splitlines()
        if "Trigger fired event" in line and DAG_ID in line
    ]
    assert fired
    assert [line for line in fired if len(line) > 1000 or "https://" in line or "http://" in line] == []


def test_a_vendor_failure_resumes_on_a_worker_and_fails_without_retry(deployment: Deployment, run: Run) -> None:
    deployment.emulator.reset()
    deployment.emulator.configure(task_failure={"next": 1})
    deployment.unpause(FAILURE)
    run_id = deployment.trigger(FAILURE)

    assert deployment.wait_for_run(FAILURE, run_id, timeout=120) == "failed"
    stats = deployment.emulator.stats()
    runs = worker_runs(deployment, FAILURE, run_id)
    assert deployment.states(FAILURE, run_id) == {("restyle", -1): ("failed", 1)}
    assert runs[("restyle", -1)] == 2  # the submit, then the resume that fails it
    assert (stats["submits"]["novita"], stats["submit_requests"]["novita"]) == (1, 1)
    (vendor_id,) = stats["tasks"]
    log = next((deployment.home / "logs" / f"dag_id={FAILURE}").rglob("attempt=1.log")).read_text()
    assert f"novita task {vendor_id} failed" in log
