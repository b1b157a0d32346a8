"""Fixtures of the deployment tests: one real Airflow deployment and one emulator process per test module.

Every test here is marked ``deployment`` (``pytest -m "not deployment"`` runs everything else). Tests marked
``compat`` are the scenarios ``make test-compat`` runs on each older supported Airflow; tests marked ``distributed``
run on the CeleryExecutor profile (`celery_deployment`), only when asked for (``make test-distributed``). Each
scenario reports its counts with `record_scenario`, and the run ends with one line per scenario (also appended to the
file named by ``GENMEDIA_SCENARIO_SUMMARY``, where the make targets gather every version's).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_genmedia.trust import DEFAULT_DESTINATION_ROOT
from genmedia_stack import CeleryDeployment, Deployment, EmulatorProcess
from tests.deployment.airflow_version import AIRFLOW_VERSION
from tests.s3_fixtures import BUCKET

HERE = Path(__file__).parent
EXAMPLE_DAGS = HERE.parents[1] / "example_dags"
#: Emulated tasks take seconds, as on the demo: long enough to be caught waiting, short enough for the suite.
EMULATOR_ARGUMENTS = ["--image-seconds", "2", "--video-seconds", "3", "--seed", "7"]
SCENARIOS: list[str] = []
#: Connections to the emulator with a daily budget of 7 jobs, one per budget scenario (a day's units are not reset).
BUDGET_CONNECTIONS = ("novita_budget", "novita_budget_kill")
BUDGET = 7


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``deployment``, before ``-m`` selects (the hook sees the whole session's)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.deployment)


def record_scenario(
    name: str, tasks: int, first_try: int, submits: int, note: str = "", *, faults: int = 0, killed: str = ""
) -> None:
    """Keep one scenario's counts for the run's closing summary: ``faults`` the vendor faults injected, ``killed``
    what was killed."""
    line = f"Airflow {AIRFLOW_VERSION} | {name}: {tasks} tasks, {first_try} first-try successes, {submits} submits"
    line += f", {faults} faults injected" if faults else ""
    line += f", killed: {killed}" if killed else ""
    SCENARIOS.append(f"{line} ({note})" if note else line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the scenarios' counts, and append them to ``GENMEDIA_SCENARIO_SUMMARY`` when it is set."""
    if not SCENARIOS:
        return
    terminalreporter.section("deployment scenarios")
    for line in SCENARIOS:
        terminalreporter.write_line(line)
    if summary := os.environ.get("GENMEDIA_SCENARIO_SUMMARY"):
        with Path(summary).open("a") as out:
            out.writelines(f"{line}\n" for line in SCENARIOS)


def dag_sources() -> list[Path]:
    """The example DAGs with their data, and the deployment tests' own DAGs."""
    examples = [path for path in EXAMPLE_DAGS.iterdir() if path.name != "__pycache__"]
    return [*examples, *sorted((HERE / "dags").glob("*.py"))]


def destination_roots(tmp_path_factory: pytest.TempPathFactory, *uris: str) -> dict[str, str]:
    """``[genmedia] destination_roots`` for the modules' runs: the examples' default (the temporary ``genmedia``
    folder), the session's temporary folders they pass as ``params.destination``, and ``uris``."""
    base = tmp_path_factory.getbasetemp().as_uri()
    return {"AIRFLOW__GENMEDIA__DESTINATION_ROOTS": ",".join([DEFAULT_DESTINATION_ROOT, base, *uris])}


def budget_connections(emulator: EmulatorProcess) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables of the `BUDGET_CONNECTIONS`, each allowing `BUDGET` jobs a day."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
            {
                "conn_type": "novita",
                "host": emulator.url,
                "password": emulator.api_key,
                "extra": {"max_jobs_per_day": BUDGET, "max_retries": 0},
            }
        )
        for conn_id in BUDGET_CONNECTIONS
    }


@pytest.fixture(scope="module")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """The emulator in its own process, with a key made for this module (so a leak of it can be searched for)."""
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    emulator = EmulatorProcess(log=log, api_key=f"gm-key-{secrets.token_hex(12)}", arguments=EMULATOR_ARGUMENTS)
    yield emulator.start()
    emulator.stop()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, emulator_process: EmulatorProcess) -> Iterator[Deployment]:
    """api-server, scheduler, dag-processor and triggerer on loopback, with connections to the emulator."""
    stack = Deployment(
        root=tmp_path_factory.mktemp("deployment"),
        dag_sources=dag_sources(),
        emulator=emulator_process,
        extra_env=budget_connections(emulator_process) | destination_roots(tmp_path_factory),
    )
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def celery_deployment(
    tmp_path_factory: pytest.TempPathFactory, emulator_process: EmulatorProcess, s3_server: str
) -> Iterator[CeleryDeployment]:
    """CeleryExecutor on PostgreSQL and Redis, two triggerers and two workers on machines of their own, with
    connections to the emulator and object storage on the local S3 server."""
    stack = CeleryDeployment(
        root=tmp_path_factory.mktemp("celery-deployment"),
        dag_sources=dag_sources(),
        emulator=emulator_process,
        s3_endpoint=s3_server,
        bucket=BUCKET,
        extra_env=budget_connections(emulator_process) | destination_roots(tmp_path_factory, f"s3://{BUCKET}"),
    )
    try:
        yield stack.start()
    finally:
        stack.stop()
