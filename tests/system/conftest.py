"""System tests: real Airflow on SQLite in the session's throwaway AIRFLOW_HOME, DAGs run with ``dag.test()``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from airflow_provider_genmedia.trust import DEFAULT_DESTINATION_ROOT


@pytest.fixture(scope="session", autouse=True)
def trusted_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's temporary folders as input and destination roots, beside the defaults: the system DAGs read
    images and publish under ``tmp_path``, given as params (templated)."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__GENMEDIA__INPUT_ROOTS", f"{os.environ['AIRFLOW__CORE__DAGS_FOLDER']},{base}")
        patch.setenv("AIRFLOW__GENMEDIA__DESTINATION_ROOTS", f"{DEFAULT_DESTINATION_ROOT},{base.as_uri()}")
        yield


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` once per session (SQLite in the temporary AIRFLOW_HOME)."""
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A metadata database (SQLite) that ``airflow db migrate`` made once for the session, untouched since: each
    subprocess demo copies it into its own AIRFLOW_HOME instead of migrating one of its own."""
    home = tmp_path_factory.mktemp("migrated-database")
    database = home / "airflow.db"
    env = os.environ | {"AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}"}
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return database


@pytest.fixture
def xcom(airflow_db: None) -> Callable[..., Any]:
    """Read one XCom value of a finished DAG run: ``xcom(dag_run, task_id, key="return_value", map_index=-1)``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    def read(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        with create_session() as session:
            query = XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key, map_indexes=map_index
            )
            rows = session.scalars(query).all()
            assert len(rows) == 1, f"{task_id}/{key}: {len(rows)} XCom rows"
            return XComModel.deserialize_value(rows[0])

    return read


@pytest.fixture
def input_image(tmp_path: Path) -> str:
    """A 320x240 PNG on disk: the img2img input of the system DAGs."""
    path = tmp_path / "product.png"
    Image.new("RGB", (320, 240), (30, 140, 90)).save(path)
    return str(path)


def task_states(dag_run: Any) -> dict[str, tuple[str, int]]:
    """``{task_id: (state, try_number)}`` of a finished DAG run."""
    return {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances()}
