"""The docs' snippets that no example DAG holds run as the pages show them: the Novita endpoint and sensor DAG, and
the page's pytest example of testing a DAG against the emulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genmedia_stack import Deployment, EmulatorProcess
from tests.conftest import REPO

pytestmark = pytest.mark.system
SNIPPETS = REPO / "docs" / "snippets"


def test_the_novita_endpoint_and_sensor_snippets_run_and_pay_once_per_task(
    tmp_path: Path, migrated_database: Path
) -> None:
    """``airflow dags test`` of the snippets' DAG file, as ``make demo`` runs an example, on an emulator of its own."""
    with EmulatorProcess(log=tmp_path / "emulator.log", arguments=["--image-seconds", "1", "--video-seconds", "2"]) as (
        emulator
    ):
        stack = Deployment(
            root=tmp_path / "airflow",
            dag_sources=[],
            emulator=emulator,
            extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(SNIPPETS)},
            postgres=False,  # airflow dags test alone, one process: SQLite in its AIRFLOW_HOME, as make demo
        )
        try:
            shutil.copyfile(migrated_database, stack.home / "airflow.db")  # the session's migrated database
            done = stack.airflow("dags", "test", "genmedia_novita_tasks", timeout=600)
            stats = emulator.stats()
        finally:
            stack.stop()

    assert done.returncode == 0, done.stdout[-5000:]
    assert stats["submits"]["novita"] == 2  # txt2img, and the wan-t2v job the sensor waits for
    assert all(task["polls"] >= 1 for task in stats["tasks"].values())


def test_the_emulator_pages_pytest_example_passes_as_written() -> None:
    """Run alone, as the page says: its own AIRFLOW_HOME, emulator and pytest session."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            "/dev/null",
            "-q",
            "-p",
            "no:cacheprovider",
            str(SNIPPETS / "test_dag_on_emulator.py"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout
