"""The one event that ends every wait for a vendor task, in the triggerer or on the worker.

Its JSON payload, carried by a `TriggerEvent` through the metadata database, is::

    {"status": "succeeded" | "failed" | "canceled" | "expired" | "timeout" | "error",
     "api": str, "task_id": str, "message": str, "result": GenerationResult json | None,
     "try_number": int}  # only from a trigger that knows the Airflow try it was started for

``result`` is given only with ``succeeded``: how any other wait ended is told by ``message``. ``try_number`` lets
the resumed task tell an event of its own try from one an earlier try left behind: Airflow 3.0 keeps a failed try's
``next_method`` and event for the retry (apache/airflow#56704, fixed in 3.1 by apache/airflow#56731).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from airflow.providers.common.compat.sdk import AirflowException
from pydantic import BaseModel, ConfigDict, ValidationError

from airflow_provider_genmedia.exceptions import GenMediaTaskFailedError
from airflow_provider_genmedia.results import GenerationResult, TaskStatus

#: The XCom key holding the vendor task id, pushed as soon as the task exists.
XCOM_TASK_ID = "genmedia_task_id"
TIMEOUT = "timeout"
ERROR = "error"
EventStatus = Literal["succeeded", "failed", "canceled", "expired", "timeout", "error"]


class TaskEvent(BaseModel):
    """How a wait ended: a final vendor status, ``timeout`` (the deadline passed) or ``error`` (polling failed)."""

    model_config = ConfigDict(frozen=True)

    status: EventStatus
    api: str
    task_id: str
    message: str
    result: GenerationResult | None
    #: The Airflow try the wait was started for; None when the trigger did not know it (an older trigger).
    try_number: int | None = None

    @classmethod
    def completed(cls, result: GenerationResult) -> TaskEvent:
        """The event of a task the vendor has finished (succeeded, failed, canceled or expired)."""
        if result.status is TaskStatus.SUCCEEDED:
            message = f"{result.api} task {result.task_id} succeeded with {len(result.outputs)} output(s)"
        else:
            reason = result.reason or "the vendor gave no reason"
            message = f"{result.api} task {result.task_id} {result.status.value}: {reason}"
        status: EventStatus = result.status.value  # type: ignore[assignment]
        return cls(status=status, api=result.api, task_id=result.task_id, message=message, result=result)

    def to_payload(self) -> dict[str, Any]:
        """The plain JSON a `TriggerEvent` carries; the result only when the task succeeded."""
        payload = self.model_dump(mode="json")
        if self.status != TaskStatus.SUCCEEDED.value:
            payload["result"] = None
        if self.try_number is None:
            del payload["try_number"]
        return payload

    @classmethod
    def from_payload(cls, payload: object) -> TaskEvent:
        """Read a payload that crossed the triggerer/worker boundary; anything malformed raises
        `AirflowException`, since it must never pass for success."""
        if not isinstance(payload, dict):
            raise AirflowException(f"The trigger event is missing or not an object: {payload!r}")
        missing = [key for key, field in cls.model_fields.items() if field.is_required() and key not in payload]
        if missing:
            raise AirflowException(f"The trigger event lacks {missing}: {payload!r}")
        if payload["status"] not in get_args(EventStatus):
            raise AirflowException(f"Unexpected trigger event status {payload['status']!r} for {payload['task_id']}")
        try:
            return cls.model_validate(payload)
        except ValidationError as error:
            raise AirflowException(
                f"The trigger event of task {payload['task_id']} holds no valid result: {error}"
            ) from error

    def from_earlier_try(self, context: Mapping[str, Any]) -> bool:
        """True when the wait was started for another try of the task than the one running now: its outcome is
        that try's, and decides nothing about this one."""
        current = current_try(context)
        return self.try_number is not None and current is not None and self.try_number != current

    def outcome(self) -> GenerationResult:
        """The succeeded task's result, or the exception for how the wait ended.

        ``failed``/``canceled``/``expired`` raise `GenMediaTaskFailedError` (a retry cannot help:
        `airflow_provider_genmedia.outcomes` fails the task without retry); ``timeout`` and ``error`` raise
        `AirflowException`, so that a retry resumes the same vendor task.
        """
        if self.status == TaskStatus.SUCCEEDED.value:
            if self.result is None:
                raise AirflowException(f"The trigger event of task {self.task_id} holds no valid result")
            if self.result.status is not TaskStatus.SUCCEEDED:
                raise AirflowException(f"The trigger event of task {self.task_id} says succeeded, its result does not")
            return self.result
        if self.status == TIMEOUT:
            raise AirflowException(f"{self.message}; a retry of this Airflow task can resume the same vendor task")
        if self.status == ERROR:
            raise AirflowException(self.message)
        raise GenMediaTaskFailedError(self.message)


def try_number_of(ti: object) -> int | None:
    """The try number of a task instance (a worker's ``context["ti"]``, the one a triggerer binds to a trigger, on
    Airflow 3.0 to 3.3 alike); None for anything without one."""
    number = getattr(ti, "try_number", None)
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def current_try(context: Mapping[str, Any]) -> int | None:
    """The try number of the running task instance; None outside a task run."""
    return try_number_of(context.get("ti"))


def log_earlier_try_event(logger: Any, event: TaskEvent, context: Mapping[str, Any]) -> None:
    """Say that a try resumed with an event an earlier try left behind, and that it starts afresh instead."""
    logger.warning(
        "Resumed with the trigger event of try %s (%s: %s), not of this try %s: Airflow 3.0 hands a retry the "
        "event of the try that failed (apache/airflow#56704). It decides nothing; this try starts afresh.",
        event.try_number,
        event.status,
        event.message,
        current_try(context),
    )
