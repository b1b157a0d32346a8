"""What a job ended in the triggerer asks of Airflow: its deferral pushes no extra-link XCom, and with
``do_xcom_push=False`` its success writes no result; the execution-API calls of each job, counted in the api-server's
access log, are reported with the scenario. One lean deployment holding only this module's DAG."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from genmedia_stack import Deployment, EmulatorProcess, wait_until
from tests.deployment.conftest import EXAMPLE_DAGS, record_scenario
from tests.deployment.observe import execution_calls, log_size, worker_runs

pytestmark = pytest.mark.compat
DAG_ID = "deploy_deferral_calls"
JOBS = ("pushed", "unpushed")
DAG = f"""
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator

with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    for task_id, push in (("pushed", True), ("unpushed", False)):
        NovitaImg2ImgOperator(
            task_id=task_id, image=str(Path(__file__).parent / "data" / "product.png"), prompt="a watercolor jug",
            model_name="sd_xl_base_1.0.safetensors", image_num=1, response_image_type="png", fit_image=True,
            deferrable=True, do_xcom_push=push,
        )
"""


@dataclass(frozen=True)
class Run:
    """The run of `DAG_ID` and the execution-API calls logged while it ran."""

    run_id: str
    calls: list[tuple[str, str]]


@pytest.fixture(scope="module")
def lean_deployment(
    tmp_path_factory: pytest.TempPathFactory, emulator_process: EmulatorProcess
) -> Iterator[Deployment]:
    """api-server, scheduler, dag-processor and triggerer with this module's DAG only (and its image)."""
    source = tmp_path_factory.mktemp("dags") / "deferral_calls_dags.py"
    source.write_text(textwrap.dedent(DAG))
    stack = Deployment(
        root=tmp_path_factory.mktemp("deployment"),
        dag_sources=[source, EXAMPLE_DAGS / "data"],
        emulator=emulator_process,
    )
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def run(lean_deployment: Deployment) -> Run:
    lean_deployment.wait_for_dags(DAG_ID)
    lean_deployment.unpause(DAG_ID)
    since = log_size(lean_deployment)
    run_id = lean_deployment.trigger(DAG_ID)
    state = lean_deployment.wait_for_run(DAG_ID, run_id, timeout=120)
    assert state == "success", lean_deployment.failure_report(DAG_ID, run_id)
    # The triggerer may end a job before the scheduler has logged its worker run as finished (seen on 3.0.6).
    wait_until(
        lambda: all(worker_runs(lean_deployment, DAG_ID, run_id)[(job, -1)] for job in JOBS),
        60,
        "the scheduler to log each job's worker run",
    )
    return Run(run_id, execution_calls(lean_deployment, since))


def test_a_deferral_pushes_no_link_and_the_link_is_there_at_the_end(lean_deployment: Deployment, run: Run) -> None:
    runs = worker_runs(lean_deployment, DAG_ID, run.run_id)
    record_scenario(
        "execution-API calls of jobs ended in the triggerer",
        len(JOBS),
        sum(runs[(job, -1)] == 1 for job in JOBS),
        lean_deployment.emulator.stats()["submits"]["novita"],
        f"{len(run.calls) / len(JOBS):.1f} calls per job",
    )

    assert [path for _, path in run.calls if "_link_" in path] == []
    assert all(runs[(job, -1)] == 1 for job in JOBS)  # the submit; the trigger ended each job
    links = lean_deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/pushed/links")
    result = lean_deployment.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/pushed/xcomEntries/return_value"
    )
    assert links["extra_links"]["First output"] == result["value"]["outputs"][0]["url"]


def test_without_do_xcom_push_the_success_writes_no_result(lean_deployment: Deployment, run: Run) -> None:
    def result_of(task_id: str) -> int:
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return lean_deployment.request("GET", path).status_code

    # The triggerer writes a result through its supervisor's database session, not the execution API: the REST API
    # shows whether it did.
    assert (result_of("pushed"), result_of("unpushed")) == (200, 404)
    assert lean_deployment.states(DAG_ID, run.run_id)[("unpushed", -1)] == ("success", 1)
