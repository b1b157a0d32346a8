"""The base of every generation operator: render and validate its arguments, pay once
(`airflow_provider_genmedia.pay_once`), wait on the worker or in the triggerer, and return the result.

What a run needs (the hook and its aiohttp transport, polling, the trigger) is imported when the task runs, not
when its DAG file is parsed: Airflow parses DAG files in fresh processes, again and again (every callback of a task
ended in the triggerer is one more parse), and aiohttp alone costs each of them ~0.14 s of CPU.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, get_args

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseOperator, BaseOperatorLink, Context

from airflow_provider_genmedia.apis.base import RequestModel, Submission, TaskApi
from airflow_provider_genmedia.events import XCOM_TASK_ID, TaskEvent, current_try, log_earlier_try_event
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.inputs import shown_image
from airflow_provider_genmedia.links import FirstOutputLink
from airflow_provider_genmedia.metrics import count_cost
from airflow_provider_genmedia.outcomes import airflow_outcomes
from airflow_provider_genmedia.pay_once import PayOnce, UncertainSubmitPolicy, record_store
from airflow_provider_genmedia.pricing import usage_summary
from airflow_provider_genmedia.results import GenerationResult, elide_blobs
from airflow_provider_genmedia.trust import INPUT_ROOTS, TemplatedFieldsRecorder

if TYPE_CHECKING:
    from airflow_provider_genmedia.hooks.genmedia import TaskClient

DEFAULT_TIMEOUT = timedelta(hours=3)


class GenMediaSubmitOperator(TemplatedFieldsRecorder, BaseOperator):
    """Base of every operator that submits a paid generation job and waits for its outputs.

    Subclasses set ``api`` (the adapter of their vendor API) and implement `build_request`. Deferred, the task
    ends in the triggerer once the vendor task succeeded (one worker run per job); any other end resumes it here.
    A templated local path or URI in a ``media_fields`` argument must fall under ``[genmedia] input_roots``
    (`airflow_provider_genmedia.trust`).

    :param conn_id: The Airflow connection; default: the API's default connection.
    :param deferrable: Wait in the triggerer, freeing the worker slot (default: ``[operators]
        default_deferrable``).
    :param wait_for_completion: False returns the vendor task id right after the submit.
    :param poll_interval: A fixed interval between polls in seconds; None for the API's adaptive schedule.
    :param timeout: How long to wait for the vendor (seconds or a timedelta); the task then fails with a
        clear error, and a retry resumes the same vendor task.
    :param on_uncertain_submit: What to do when a submit was sent but its answer never proved whether a job was
        created (no answer, a gateway's 502/504): ``"fail"`` (default) fails the task without retry and names
        what to check in the vendor's console; ``"resubmit"`` lets the next try submit again, which may pay twice.
    """

    api: ClassVar[TaskApi]
    template_fields: Sequence[str] = ("conn_id",)
    ui_color = "#f3e5f5"
    operator_extra_links: Collection[BaseOperatorLink] = (FirstOutputLink(),)
    #: Arguments that take an image (a path, URL, URI, bytes or base64): shown as a reference or a placeholder.
    media_fields: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        wait_for_completion: bool = True,
        poll_interval: float | None = None,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        on_uncertain_submit: UncertainSubmitPolicy = "fail",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_uncertain_submit not in get_args(UncertainSubmitPolicy):
            raise GenMediaValidationError(
                "on_uncertain_submit", f"expected one of {get_args(UncertainSubmitPolicy)}, not {on_uncertain_submit!r}"
            )
        self.on_uncertain_submit: UncertainSubmitPolicy = on_uncertain_submit
        self.conn_id = conn_id or self.api.default_conn_id
        self.deferrable = deferrable
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        #: Rendered values that hold media bytes, kept here while their template fields show placeholders.
        self._inputs: dict[str, Any] = {}
        #: The result json this try returns, once it has one (`FirstOutputLink` reads it).
        self.generation_result: dict[str, Any] | None = None
        #: The vendor task id of this try, and the trigger event it resumed with: what its lineage tells.
        self.genmedia_task_id: str | None = None
        self.vendor_event: dict[str, Any] | None = None

    def _do_render_template_fields(
        self, parent: Any, template_fields: Iterable[str], context: Context, jinja_env: Any, seen_oids: set[int]
    ) -> None:
        """Note the templated fields (`TemplatedFieldsRecorder`), render as Airflow does, then keep media bytes out of
        Rendered Templates: a pure transformation, no I/O.

        This is the one seam that both ways of rendering pass through on Airflow 3.0 to 3.3: the public
        ``render_template_fields`` is skipped for a mapped task, whose ``MappedOperator`` calls this method of the
        unmapped task directly, so that an operator's override of it applies (as Airflow's own comment there says).
        """
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is self:
            self._hide_media()

    def _hide_media(self) -> None:
        """Move every template field value that holds bytes or base64 to `_inputs`, leaving a placeholder."""
        for field in self.template_fields:
            value = getattr(self, field, None)
            shown = shown_image(value) if field in self.media_fields else elide_blobs(value)
            if shown != value:
                self._inputs[field] = value
                setattr(self, field, shown)

    def setting(self, field: str) -> Any:
        """The rendered value of an argument, media bytes included (what `build_request` sends)."""
        return self._inputs.get(field, getattr(self, field))

    def build_request(self) -> tuple[str | None, RequestModel | Mapping[str, Any]]:
        """The submit route (None: the one the API chooses for the request) and body, from the operator's
        (rendered) arguments; raise on bad input."""
        raise NotImplementedError

    def prepare(self) -> Submission:
        """The request built from the arguments and checked once by the API's adapter, before anything is sent."""
        path, request = self.build_request()
        return self.api.prepare(request, path)

    def execute(self, context: Context) -> Any:
        """Validate, then resume the recorded vendor task or submit a new one, and wait for it; errors end the task
        as `airflow_provider_genmedia.outcomes` maps them."""
        with airflow_outcomes(f"Invalid input, nothing was sent to {self.api.name}"):
            self.check_locations(self.media_fields, INPUT_ROOTS, self.setting)
            submission = self.prepare()
        with airflow_outcomes(on_uncertain_submit=self.on_uncertain_submit):
            return self._submit_and_wait(context, submission)

    def _submit_and_wait(self, context: Context, submission: Submission) -> Any:
        """Resume the recorded vendor task or submit ``submission``, then wait for it here or in the triggerer."""
        from airflow_provider_genmedia.hooks.genmedia import client_for
        from airflow_provider_genmedia.polling import wait_for_task
        from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger

        client = client_for(self.api, self.conn_id)
        submitted_at = time.time()
        task_id, result = PayOnce(client, record_store(context), self.on_uncertain_submit, self.log).submit(submission)
        context["ti"].xcom_push(key=XCOM_TASK_ID, value=task_id)
        self.genmedia_task_id = task_id
        if not self.wait_for_completion:
            return task_id
        if result is not None and result.status.is_terminal:
            return self._returned(self._complete(client, TaskEvent.completed(result).outcome(), submission))
        if self.deferrable:
            self.log.info("Waiting for %s task %s in the triggerer", self.api.name, task_id)
            # The task runner pushes every extra link's XCom when a try ends, deferrals included: one execution-API
            # call for a link that is empty until the vendor answers. Without links on this instance it pushes none;
            # the UI reads the links' names from the serialized DAG, and the trigger stores the link at the end.
            self.operator_extra_links = ()
            self.defer(
                trigger=GenMediaTaskTrigger.for_task(
                    self.api.name,
                    task_id,
                    self.conn_id,
                    poll_interval=self.poll_interval,
                    timeout=self.timeout,
                    request=elide_blobs(submission.body),
                    # A task submitted by this try: the first poll comes the API's typical first wait after it.
                    submitted_at=submitted_at if result is None else None,
                    path=submission.path,
                    try_number=current_try(context),
                    push_result=self.do_xcom_push,
                ),
                method_name="execute_complete",
            )
        end_time = time.time() + self.timeout
        done = wait_for_task(client, task_id, poll_interval=self.poll_interval, end_time=end_time)
        return self._returned(self._complete(client, done, submission))

    def _complete(self, client: TaskClient, result: GenerationResult, submission: Submission) -> GenerationResult:
        """The succeeded result as `TaskApi.complete` makes it, priced at the connection's ``prices``, as the
        trigger completes it."""
        return self.api.complete(result, submission.body, path=submission.path, prices=client.hook.settings().prices)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume from the trigger: the result json the trigger completed, or the failure the event describes; an
        event an earlier try left behind decides nothing, and this try starts afresh (resuming the recorded task)."""
        ended = TaskEvent.from_payload(event)
        if ended.from_earlier_try(context):
            log_earlier_try_event(self.log, ended, context)
            return self.execute(context)
        self.vendor_event = event
        with airflow_outcomes():
            return self._returned(ended.outcome())

    def _lineage(self) -> Any:
        """This try's OpenLineage (`airflow_provider_genmedia.lineage.submit_lineage`)."""
        from airflow_provider_genmedia.lineage import media_inputs, submit_lineage

        values = {field: self.setting(field) for field in self.template_fields}
        inputs = media_inputs(values, self.media_fields)
        return submit_lineage(
            self.api.name, inputs, self.generation_result, self.genmedia_task_id, event=self.vendor_event
        )

    def get_openlineage_facets_on_start(self) -> Any:
        """OpenLineage at the start: the media inputs (links without their query string, URIs, paths)."""
        return self._lineage()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage at the end: inputs, the vendor's output links as outputs, the vendor task id
        (``externalQuery``) and the ``genmedia`` run facet."""
        return self._lineage()

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage of a failed try: what is known, with the vendor's reason where the vendor task failed."""
        return self._lineage()

    def _returned(self, result: GenerationResult) -> dict[str, Any]:
        """The result json returned to XCom: outputs and metadata (with the request's prompt and model, and its usage
        and cost), never media bytes."""
        self.log.info(
            "%s task %s succeeded with %d output(s); usage: %s",
            self.api.name,
            result.task_id,
            len(result.outputs),
            usage_summary(result.usage),
        )
        self.generation_result = result.model_dump(mode="json")
        count_cost(result)
        return self.generation_result
