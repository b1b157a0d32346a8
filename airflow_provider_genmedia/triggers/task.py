"""`GenMediaTaskTrigger`: the wait for a vendor task in the triggerer, ending in one `TaskEvent` payload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.events import ERROR, TaskEvent
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.hooks.genmedia import hook_for
from airflow_provider_genmedia.polling import PollPlanner, watch_task


def defer_settle() -> float:
    """Seconds a trigger holds its event after it started: ``[genmedia] defer_settle``.

    Airflow 3.3 fails a resumed task when the worker's report of the deferral, sent up to ``[workers]
    min_heartbeat_interval`` after it, reaches the scheduler once the resumed try is running
    (https://github.com/apache/airflow/issues/72716). The default, twice that interval, keeps a task that the
    vendor finished within seconds from failing; it costs nothing to a task that takes longer.
    """
    heartbeat = conf.getfloat("workers", "min_heartbeat_interval", fallback=5.0)
    return conf.getfloat("genmedia", "defer_settle", fallback=2 * heartbeat)


class GenMediaTaskTrigger(BaseTrigger):
    """Poll a vendor task from the triggerer until it ends or ``end_time`` passes; yield one event.

    The vendor's id lives in ``genmedia_task_id``: ``task_id`` belongs to `BaseTrigger`, and the triggerer sets
    it to the Airflow task id when it binds the task instance. Every trigger of a triggerer process that uses
    the same connection shares one HTTP session and one poll rate (connection extra ``max_polls_per_second``).

    :param api: The API that owns the task (``novita``, ``jimeng``, ``bailian`` or ``avatar``).
    :param genmedia_task_id: The vendor's task id.
    :param conn_id: The Airflow connection holding the base URL and the API key; None for the API's default.
    :param poll_interval: A fixed interval between polls in seconds; None for the API's adaptive schedule.
    :param end_time: Absolute deadline as a UTC epoch; None to wait as long as the vendor works.
    """

    def __init__(
        self,
        api: str,
        genmedia_task_id: str,
        conn_id: str | None,
        poll_interval: float | None = None,
        end_time: float | None = None,
    ) -> None:
        super().__init__()
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError("poll_interval must be a positive number of seconds")
        self.api = api
        self.genmedia_task_id = genmedia_task_id
        self.conn_id = conn_id
        self.poll_interval = poll_interval
        self.end_time = end_time

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Identifiers, the schedule and the absolute deadline: plain JSON, never a credential."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "api": self.api,
                "genmedia_task_id": self.genmedia_task_id,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll over the process's shared session until the task ends, the deadline passes or polling fails."""
        task_id = str(self.genmedia_task_id)
        try:
            api = get_api(self.api)
        except GenMediaValidationError as error:
            message = f"cannot wait for {self.api} task {task_id}: {error}"
            yield TriggerEvent(
                TaskEvent(status=ERROR, api=self.api, task_id=task_id, message=message, result=None).to_payload()
            )
            return
        planner = PollPlanner(api.poll_schedule, poll_interval=self.poll_interval, end_time=self.end_time)
        event = await watch_task(hook_for(api, self.conn_id), api, task_id, planner, self.log, settle=defer_settle())
        yield TriggerEvent(event.to_payload())

    async def on_kill(self) -> None:
        """No vendor API can cancel a task yet: say so, since the task keeps running and is still billed."""
        self.log.warning(
            "The %s API cannot cancel tasks: vendor task %s keeps running and is still billed.",
            self.api,
            self.genmedia_task_id,
        )
