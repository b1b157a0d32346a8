"""Fixtures of the deployment tests: one real Airflow deployment and one emulator process per test module."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment.stack import REPO, Deployment, EmulatorProcess

#: Emulated tasks take seconds, as on the demo: long enough to be caught waiting, short enough for the suite.
EMULATOR_ARGUMENTS = ["--image-seconds", "2", "--video-seconds", "3", "--seed", "7"]


def dag_sources() -> list[Path]:
    """The example DAGs with their data, and the deployment tests' own DAGs."""
    examples = [path for path in (REPO / "example_dags").iterdir() if path.name != "__pycache__"]
    return [*examples, *sorted((Path(__file__).parent / "dags").glob("*.py"))]


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
    stack = Deployment(root=tmp_path_factory.mktemp("deployment"), dag_sources=dag_sources(), emulator=emulator_process)
    try:
        yield stack.start()
    finally:
        stack.stop()
