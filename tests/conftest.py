"""Test settings: a throwaway AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="genmedia-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# Triggers run inline here, with no worker report to race (tests/deployment checks the default on a real stack).
os.environ.setdefault("AIRFLOW__GENMEDIA__DEFER_SETTLE", "0")
# dag.test() parses the whole folder and runs only DAGs inside it: the system tests' own DAGs live there.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "tests" / "system" / "dags"))

pytest_plugins = ["tests.emulator_fixtures", "tests.s3_fixtures"]
