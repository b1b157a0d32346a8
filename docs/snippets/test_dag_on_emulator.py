"""The docs' example of testing your own DAG against the emulator with pytest (see docs/emulator.md).

``make test`` runs it alone (tests/system/test_docs_snippets.py), as you would:
``.venv/bin/python -m pytest -c /dev/null docs/snippets/test_dag_on_emulator.py``. It tests the img2img example
DAG, as a user would test a DAG of their own.
"""

from __future__ import annotations

# [START howto_emulator_pytest]
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

DAGS = Path(__file__).resolve().parents[2] / "example_dags"  # your DAG folder
# Before Airflow is imported: a throwaway AIRFLOW_HOME, and the folder of the DAGs that dag.test() runs.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
sys.path.insert(0, str(DAGS))

from genmedia_emulator import EmulatorConfig, EmulatorServer  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The metadata database of the throwaway AIRFLOW_HOME (SQLite), once per test session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """The four vendor APIs on a free loopback port, and the default connections aimed at them."""
    with EmulatorServer(EmulatorConfig(image_seconds=1, video_seconds=2)) as server:
        for conn_id, conn_type in (("novita_default", "novita"), ("gptge_default", "gptge")):
            connection = {"conn_type": conn_type, "host": server.url, "password": server.config.api_key}
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        yield server


def test_the_pipeline_publishes_and_pays_once(
    airflow_db: None, emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genmedia_img2img_pipeline import img2img_pipeline  # your DAG

    # A destination given in the run's conf is templated: it must fall under [genmedia] destination_roots.
    monkeypatch.setenv("AIRFLOW__GENMEDIA__DESTINATION_ROOTS", tmp_path.as_uri())
    run = img2img_pipeline.test(run_conf={"destination": tmp_path.as_uri()})

    assert run.state == "success"
    stats = requests.get(f"{emulator.url}/_emulator/stats", timeout=10).json()
    assert stats["submits"]["novita"] == 1  # one paid job for one task
    assert len(list(tmp_path.glob("*.png"))) == 4  # the published images, beside their manifest
    # [END howto_emulator_pytest]
