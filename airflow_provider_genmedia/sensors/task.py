"""Wait for a vendor task that was submitted elsewhere (for example by a webhook-driven system).

The hook is imported when the task runs, not when its DAG file is parsed (see
`airflow_provider_genmedia.operators.base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, conf
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS
from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue

from airflow_provider_genmedia.apis import TaskApi, get_api
from airflow_provider_genmedia.events import TIMEOUT, TaskEvent, current_try, log_earlier_try_event
from airflow_provider_genmedia.exceptions import GenMediaError
from airflow_provider_genmedia.links import FirstOutputLink
from airflow_provider_genmedia.outcomes import airflow_outcomes
from airflow_provider_genmedia.results import GenerationResult
from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger


def _pulls_every_map_index(template: Any) -> bool:
    """True when a template pulls an XCom without ``map_indexes``, a query the 3.3.2 triggerer cannot answer."""
    return isinstance(template, str) and "xcom_pull(" in template and "map_indexes" not in template


def _is_template(value: Any) -> bool:
    """True for a string that Jinja would render."""
    return isinstance(value, str) and any(mark in value for mark in ("{{", "{%", "{#"))


class GenMediaTaskSensor(BaseSensorOperator):
    """Wait until an existing vendor task ends and return its `GenerationResult` json.

    A failed, canceled or expired task fails the sensor without retries (`AirflowFailException`); a poll that
    fails for a transient reason (connection, 429, 5xx) is just poked again. Deferred, a task that succeeded ends
    the sensor in the triggerer.

    :param api: The API that owns the task (``novita``, ``jimeng``, ``bailian`` or ``avatar``).
    :param genmedia_task_id: The vendor's task id (``task_id`` stays the Airflow task's id, as for every
        operator); an XCom ``genmedia_task_id`` pushed by a submit operator fits here as a template.
    :param conn_id: The Airflow connection; default: the API's default connection.
    :param deferrable: Wait in the triggerer with `GenMediaTaskTrigger` instead of poking on a worker; the
        triggerer ends the task once the vendor task succeeded.
    :param poll_interval: A fixed interval between polls in seconds. Deferrable: None uses the API's
        adaptive schedule. Poking: it becomes ``poke_interval`` unless that is given.
    :param start_from_trigger: Deferrable, start in the triggerer itself, its templates rendered there: the task
        takes no worker run at all (the default). False checks the task once on a worker, then defers: one worker
        run, and less for the triggerer to hold, since Airflow 3.3 hands each trigger that starts a task the whole
        serialized DAG (docs/benchmarks.md has the figures at 300 and 1,000 sensors in one DAG). It defers from a
        worker anyway when ``genmedia_task_id`` pulls an XCom without ``map_indexes`` (Airflow 3.3.2's triggerer cannot
        answer that query; write ``ti.xcom_pull(task_ids="submit", key="genmedia_task_id", map_indexes=-1)``), or,
        before Airflow 3.3, when an argument is a template.
    """

    template_fields: Sequence[str] = ("api", "genmedia_task_id", "conn_id")
    operator_extra_links = (FirstOutputLink(),)
    start_from_trigger = False

    def __init__(
        self,
        *,
        api: str,
        genmedia_task_id: str,
        conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        start_from_trigger: bool = True,
        **kwargs: Any,
    ) -> None:
        if poll_interval is not None:
            kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.api = api
        self.genmedia_task_id = genmedia_task_id
        self.conn_id = conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        #: The result json this try returns, once it has one (`FirstOutputLink` reads it).
        self.generation_result: dict[str, Any] | None = None
        if not (deferrable and start_from_trigger):
            return
        if not AIRFLOW_V_3_3_PLUS and any(_is_template(value) for value in (api, genmedia_task_id, conn_id)):
            self.log.info(
                "%s defers from a worker: Airflow before 3.3 cannot render its templated arguments in the triggerer",
                self.task_id,
            )
        elif not _pulls_every_map_index(genmedia_task_id):
            self.start_from_trigger = True
            self.start_trigger_args = GenMediaTaskTrigger.start_args(
                api,
                genmedia_task_id,
                conn_id,
                poll_interval=poll_interval,
                timeout=self.timeout,
                push_result=self.do_xcom_push,
            )

    @cached_property
    def task_api(self) -> TaskApi:
        """The adapter of ``api``, resolved once its template is rendered."""
        return get_api(self.api)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Read the task once, as one poll of the trigger: done with its result json once it succeeded; raise if
        it ended otherwise. The poke interval is the retry layer: a transient failure is just poked again; other
        errors end the task as `airflow_provider_genmedia.outcomes` maps them."""
        with airflow_outcomes():
            return self._poke_once()

    def _poke_once(self) -> bool | PokeReturnValue:
        """`poke`, its errors unmapped."""
        from airflow_provider_genmedia.hooks.genmedia import client_for

        client = client_for(self.task_api, self.conn_id)
        try:
            answer = client.run_sync(client.apoll(self.genmedia_task_id))
        except GenMediaError as error:
            if not error.transient:
                raise
            self.log.warning("Polling %s task %s failed (%s): poking again", self.api, self.genmedia_task_id, error)
            return False
        if not isinstance(answer, GenerationResult) or not answer.status.is_terminal:
            self.log.info("%s task %s is %s", self.api, self.genmedia_task_id, answer.status.value)
            return False
        self.generation_result = TaskEvent.completed(answer).outcome().model_dump(mode="json")
        return PokeReturnValue(is_done=True, xcom_value=self.generation_result)

    def execute(self, context: Context) -> Any:
        """Poke on the worker, or check once and defer to the triggerer until the task ends."""
        if not self.deferrable:
            return super().execute(context)
        checked = self.poke(context)
        if isinstance(checked, PokeReturnValue):
            return checked.xcom_value
        self.defer(
            trigger=GenMediaTaskTrigger.for_task(
                self.api,
                self.genmedia_task_id,
                self.conn_id or self.task_api.default_conn_id,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                try_number=current_try(context),
                push_result=self.do_xcom_push,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume from the trigger's event: the result json, or the failure the event describes; an event an earlier
        try left behind decides nothing, and this try starts afresh."""
        ended = TaskEvent.from_payload(event)
        if ended.from_earlier_try(context):
            log_earlier_try_event(self.log, ended, context)
            return self.execute(context)
        if ended.status == TIMEOUT:
            raise AirflowSensorTimeout(ended.message)
        with airflow_outcomes():
            self.generation_result = ended.outcome().model_dump(mode="json")
        return self.generation_result
