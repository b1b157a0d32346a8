"""`GenMediaTaskTrigger`: the wait for a vendor task in the triggerer, ending the Airflow task there when the vendor
task succeeded, or resuming it on a worker with one `TaskEvent` payload.

The hook and the polling loop are imported when a trigger runs, not with this module: a sensor builds its start
arguments (`GenMediaTaskTrigger.start_args`) when its DAG file is parsed (see
`airflow_provider_genmedia.operators.base`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import XCom, conf
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TaskSuccessEvent, TriggerEvent
from asgiref.sync import sync_to_async

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.events import ERROR, TaskEvent, try_number_of
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.links import FirstOutputLink, first_output_url
from airflow_provider_genmedia.metrics import count_cost
from airflow_provider_genmedia.pricing import usage_summary
from airflow_provider_genmedia.results import TaskStatus


def defer_settle() -> float:
    """Seconds a trigger holds an event that resumes its task on a worker, after it started: ``[genmedia]
    defer_settle``.

    Airflow 3.3 fails a resumed task when the worker's report of the deferral, sent up to ``[workers]
    min_heartbeat_interval`` after it, reaches the scheduler once the resumed try is running
    (https://github.com/apache/airflow/issues/72716); a vendor failure resumed that way would be retried, and the
    retry would pay for a new job. The default, twice that interval, keeps a task that the vendor ended within
    seconds from that; it costs nothing to a task that takes longer, nor to one the trigger ends itself.
    """
    heartbeat = conf.getfloat("workers", "min_heartbeat_interval", fallback=5.0)
    return conf.getfloat("genmedia", "defer_settle", fallback=2 * heartbeat)


class GenMediaTaskTrigger(BaseTrigger):
    """Poll a vendor task from the triggerer until it ends or ``end_time`` passes; yield one event.

    With ``end_task``, a vendor task that succeeded ends the Airflow task in the triggerer (`TaskSuccessEvent`,
    no worker run), once its result json is written to XCom ``return_value`` as a worker writes it (the Task
    SDK's ``XCom.set``): Airflow 3.0 to 3.3 store an event's own ``xcoms`` JSON-encoded once more, which a
    downstream task would read as a string. The event carries only the first output's link, which the API server
    decodes either way. Every other outcome, and every outcome without ``end_task``, resumes the task on a worker
    with a `TaskEvent` payload (without its result unless it succeeded, so that Airflow's log line of it stays
    short).

    The vendor's id lives in ``genmedia_task_id``: ``task_id`` belongs to `BaseTrigger`, and the triggerer sets
    it to the Airflow task id when it binds the task instance. Every trigger of a triggerer process that uses
    the same connection shares one HTTP session and one poll rate (connection extra ``max_polls_per_second``).

    :param api: The API that owns the task (``novita``, ``jimeng``, ``bailian`` or ``avatar``).
    :param genmedia_task_id: The vendor's task id.
    :param conn_id: The Airflow connection holding the base URL and the API key; None for the API's default.
    :param poll_interval: A fixed interval between polls in seconds; None for the API's adaptive schedule.
    :param end_time: Absolute deadline as a UTC epoch; None to wait as long as the vendor works.
    :param request: The submitted body with its media elided, to complete a succeeded result as the operator
        does (`TaskApi.complete`: prompt, model, the avatar's watermark choice); None returns the result as the
        vendor gave it (a task submitted elsewhere).
    :param end_task: End the Airflow task here when the vendor task succeeded.
    :param submitted_at: When the vendor task was submitted, as a UTC epoch: the first poll is planned from it;
        None plans it from the trigger's start.
    :param path: The route the request was submitted to, which prices it (the connection extra ``prices``); None
        prices it at the API's own prices.
    :param push_result: With ``end_task``, write the result json to XCom before ending the task (the task's
        ``do_xcom_push``); False ends it without that write.
    :param try_number: The Airflow try the wait was started for, carried by the event that resumes the task, so
        that a later try knows an event left by this one (Airflow 3.0 replays it to the retry); None takes the try of
        the task instance the triggerer binds, where there is one (a trigger serialized before this argument existed,
        a sensor that starts in the triggerer).
    """

    def __init__(
        self,
        api: str,
        genmedia_task_id: str,
        conn_id: str | None,
        poll_interval: float | None = None,
        end_time: float | None = None,
        request: dict[str, Any] | None = None,
        end_task: bool = False,
        submitted_at: float | None = None,
        path: str | None = None,
        try_number: int | None = None,
        push_result: bool = True,
    ) -> None:
        super().__init__()
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError("poll_interval must be a positive number of seconds")
        self.api = api
        self.genmedia_task_id = genmedia_task_id
        self.conn_id = conn_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.request = request
        self.end_task = end_task
        self.submitted_at = submitted_at
        self.path = path
        self.try_number = try_number
        self.push_result = push_result

    @classmethod
    def for_task(
        cls,
        api: str,
        genmedia_task_id: str,
        conn_id: str | None,
        *,
        poll_interval: float | None,
        timeout: float,
        **completion: Any,
    ) -> GenMediaTaskTrigger:
        """The trigger a worker defers an Airflow task to: it ends the task once the vendor task succeeded, and its
        wait lasts at most ``timeout`` seconds from now (``end_time``, the one deadline rule of every wait). What
        completes the result (``request``, ``submitted_at``, ``path``, ``try_number``, ``push_result``) comes in
        ``completion``."""
        end_time = time.time() + timeout
        return cls(api, genmedia_task_id, conn_id, poll_interval, end_time, end_task=True, **completion)

    @classmethod
    def start_args(
        cls,
        api: str,
        genmedia_task_id: str,
        conn_id: str | None,
        *,
        poll_interval: float | None,
        timeout: float,
        push_result: bool = True,
    ) -> StartTriggerArgs:
        """What starts an Airflow task in the triggerer with the trigger `for_task` makes, built when its DAG is parsed:
        the wait begins when Airflow creates the trigger, an instant no ``end_time`` can hold yet, so the same
        ``timeout`` is Airflow's trigger timeout from then."""
        trigger = cls(api, genmedia_task_id, conn_id, poll_interval, end_task=True, push_result=push_result)
        trigger_cls, kwargs = trigger.serialize()
        return StartTriggerArgs(
            trigger_cls=trigger_cls,
            trigger_kwargs=kwargs,
            next_method="execute_complete",
            timeout=timedelta(seconds=timeout),
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Identifiers, the schedule, the absolute deadline and the elided request: plain JSON, never a credential
        nor media bytes."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "api": self.api,
                "genmedia_task_id": self.genmedia_task_id,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "request": self.request,
                "end_task": self.end_task,
                "submitted_at": self.submitted_at,
                "path": self.path,
                "try_number": self.try_number,
                "push_result": self.push_result,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll over the process's shared session until the task ends, the deadline passes or polling fails."""
        from airflow_provider_genmedia.hooks.genmedia import client_for
        from airflow_provider_genmedia.polling import PollPlanner, watch_task

        started = time.monotonic()
        task_id = str(self.genmedia_task_id)
        try:
            api = get_api(self.api)
        except GenMediaValidationError as error:
            message = f"cannot wait for {self.api} task {task_id}: {error}"
            ended = TaskEvent(status=ERROR, api=self.api, task_id=task_id, message=message, result=None)
            yield TriggerEvent(ended.model_copy(update={"try_number": self._try_number()}).to_payload())
            return
        planner = PollPlanner(
            api.poll_schedule, poll_interval=self.poll_interval, end_time=self.end_time, submitted_at=self.submitted_at
        )
        client = client_for(api, self.conn_id)
        event = await watch_task(client, task_id, planner, self.log)
        if event.result is not None and event.result.status is TaskStatus.SUCCEEDED and self.request is not None:
            prices = (await client.hook.asettings()).prices
            completed = api.complete(event.result, self.request, path=self.path, prices=prices)
            event = event.model_copy(update={"result": completed})
        if self.end_task and event.result is not None and event.result.status is TaskStatus.SUCCEEDED:
            result = event.result.model_dump(mode="json")
            if not self.push_result or await self._push_result(result):
                count_cost(event.result)
                summary = usage_summary(event.result.usage)
                self.log.info("%s; usage: %s; the task ends here, without a worker run", event.message, summary)
                yield TaskSuccessEvent(xcoms={FirstOutputLink().xcom_key: first_output_url(result)})
                return
        await asyncio.sleep(max(started + defer_settle() - time.monotonic(), 0.0))
        yield TriggerEvent(event.model_copy(update={"try_number": self._try_number()}).to_payload())

    def _try_number(self) -> int | None:
        """The try the wait was started for: the argument, else the bound task instance's."""
        return self.try_number if self.try_number is not None else try_number_of(self.task_instance)

    async def _push_result(self, result: dict[str, Any]) -> bool:
        """Write the result json as the bound task instance's ``return_value``; False (the task then resumes on a
        worker, which returns it) when there is no task instance or the write failed."""
        ti = self.task_instance
        if ti is None:
            return False
        try:
            await sync_to_async(XCom.set)(
                "return_value", result, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index
            )
        except Exception as error:
            self.log.warning("Could not write the result in the triggerer (%s): the task resumes on a worker", error)
            return False
        return True

    async def on_kill(self) -> None:
        """No vendor API can cancel a task yet: say so, since the task keeps running and is still billed."""
        self.log.warning(
            "The %s API cannot cancel tasks: vendor task %s keeps running and is still billed.",
            self.api,
            self.genmedia_task_id,
        )
