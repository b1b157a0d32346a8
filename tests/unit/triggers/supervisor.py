"""The Task SDK's channel to its supervisor as a test stands it up: what a bound trigger sends over it is recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger


@dataclass
class Supervisor:
    """Answers ``SetXCom`` as the triggerer's supervisor does (by storing it), takes ``MaskSecret`` (Airflow 3.0
    sends one for each secret it reads), and refuses anything else."""

    xcoms: dict[str, Any] = field(default_factory=dict)
    refuse: bool = False

    def send(self, msg: Any) -> None:
        if type(msg).__name__ == "MaskSecret":
            return
        if type(msg).__name__ != "SetXCom":
            raise AssertionError(f"unexpected message to the supervisor: {msg!r}")
        if self.refuse:
            raise ConnectionError("the supervisor is gone")
        self.xcoms[msg.key] = msg.value


@dataclass
class BoundTaskInstance:
    """What the triggerer binds to a trigger: the task instance's identity."""

    task_id: str = "restyle"
    dag_id: str = "nightly"
    run_id: str = "manual__2026-11-30T02:00:00+00:00"
    map_index: int = -1


def bind(trigger: GenMediaTaskTrigger) -> GenMediaTaskTrigger:
    """Bind the trigger to a task instance, as the triggerer does before running it."""
    trigger.task_instance = BoundTaskInstance()  # type: ignore[assignment]
    return trigger


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> Supervisor:
    """The supervisor channel the Task SDK's ``XCom.set`` writes through, for this test."""
    from airflow.sdk.execution_time import task_runner

    channel = Supervisor()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", channel, raising=False)
    return channel
