"""The submit machinery every generation operator shares: validate, pay once, wait, return the result.

A vendor job costs money. Before the submit is sent, the attempt (API, request fingerprint, time) is written to
``task_state_store``; the vendor task id is added right after the answer. A later try of the same Airflow task
(a retry, a worker that died, a deadline that passed) resumes that task instead of paying again: it waits for
it while it runs, returns it once it succeeded, and submits a new job only when the stored one failed, was
canceled or expired. An attempt without a task id was sent but never answered in a way that proves whether a
job exists (no answer, a gateway's 502/504, a worker killed mid-request): the task then fails without retry
and says what to check, unless ``on_uncertain_submit="resubmit"`` accepts paying twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from airflow.sdk import BaseOperator, Context, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.apis.base import RequestModel, Submission
from airflow_provider_genmedia.events import TaskEvent, result_from_event
from airflow_provider_genmedia.exceptions import (
    GenMediaNotFoundError,
    GenMediaUncertainSubmitError,
    GenMediaValidationError,
)
from airflow_provider_genmedia.hooks.genmedia import GenMediaHook, hook_for_api
from airflow_provider_genmedia.inputs import shown_image
from airflow_provider_genmedia.links import FirstOutputLink
from airflow_provider_genmedia.polling import wait_for_task
from airflow_provider_genmedia.results import GenerationResult, TaskStatus, elide_blobs
from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger

#: The ``task_state_store`` key that remembers the vendor task of this Airflow task (all tries share it).
STATE_KEY = "genmedia_task"
#: The XCom key holding the vendor task id, pushed as soon as the task exists.
XCOM_TASK_ID = "genmedia_task_id"
DEFAULT_TIMEOUT = timedelta(hours=3)
ON_UNCERTAIN_SUBMIT = ("fail", "resubmit")


def shown_value(value: Any) -> Any:
    """``value`` as Rendered Templates shows it: raw bytes and base64 blobs (plain or data URI, at any depth)
    replaced by a short placeholder; anything else as it is."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes elided>"
    return elide_blobs(value)


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """A stable digest of a submit body, to tell whether a stored task was made from the same request."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class GenMediaSubmitOperator(BaseOperator):
    """Base of every operator that submits a paid generation job and waits for its outputs.

    Subclasses set ``api`` and implement `build_request`.

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

    api: ClassVar[str]
    template_fields: Sequence[str] = ("conn_id",)
    ui_color = "#f3e5f5"
    operator_extra_links = (FirstOutputLink(),)
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
        on_uncertain_submit: Literal["fail", "resubmit"] = "fail",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_uncertain_submit not in ON_UNCERTAIN_SUBMIT:
            raise ValueError(f"on_uncertain_submit: expected one of {ON_UNCERTAIN_SUBMIT}, not {on_uncertain_submit!r}")
        self.on_uncertain_submit = on_uncertain_submit
        self.conn_id = conn_id or get_api(self.api).default_conn_id
        self.deferrable = deferrable
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        #: Rendered values that hold media bytes, kept here while their template fields show placeholders.
        self._inputs: dict[str, Any] = {}

    def _do_render_template_fields(
        self, parent: Any, template_fields: Iterable[str], context: Context, jinja_env: Any, seen_oids: set[int]
    ) -> None:
        """Render as Airflow does (mapped tasks included), then keep media bytes out of Rendered Templates."""
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is self:
            self._hide_media()

    def _hide_media(self) -> None:
        """Move every template field value that holds bytes or base64 to `_inputs`, leaving a placeholder."""
        for field in self.template_fields:
            value = getattr(self, field, None)
            shown = shown_image(value) if field in self.media_fields else shown_value(value)
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
        return get_api(self.api).prepare(request, path)

    def execute(self, context: Context) -> Any:
        """Validate, then resume the stored vendor task or submit a new one, and wait for it."""
        try:
            submission = self.prepare()
        except GenMediaValidationError as error:
            raise AirflowFailException(f"Invalid input, nothing was sent to {self.api}: {error}") from error
        fingerprint = request_fingerprint(submission.body)
        store = context.get("task_state_store")
        if store is None:
            self.log.warning("No task_state_store in this context: a retry could not resume the vendor task")
        hook = hook_for_api(self.api, self.conn_id)
        task_id, result = self._resume(store, hook, fingerprint)
        if task_id is None:
            task_id = self._submit(store, hook, submission, fingerprint)
        context["ti"].xcom_push(key=XCOM_TASK_ID, value=task_id)
        if not self.wait_for_completion:
            return task_id
        if result is None:
            result = hook.get_result(self.api, task_id)
        if result.status.is_terminal:
            return self._complete(TaskEvent.completed(result).outcome(), submission.body)
        end_time = time.time() + self.timeout
        if self.deferrable:
            self.log.info("Waiting for %s task %s in the triggerer", self.api, task_id)
            self.defer(
                trigger=GenMediaTaskTrigger(self.api, task_id, self.conn_id, self.poll_interval, end_time),
                method_name="execute_complete",
            )
        done = wait_for_task(hook, self.api, task_id, poll_interval=self.poll_interval, end_time=end_time)
        return self._complete(done, submission.body)

    def _submit(self, store: Any, hook: GenMediaHook, submission: Submission, fingerprint: str) -> str:
        """Record the attempt, send the submit once, and record the vendor task id it returned."""
        attempt = {
            "api": self.api,
            "task_id": None,
            "fingerprint": fingerprint,
            "attempted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "request": elide_blobs(submission.body),
        }
        if store is not None:
            store.set(STATE_KEY, attempt)
        try:
            task_id = hook.submit(self.api, submission.path, submission.request)
        except GenMediaUncertainSubmitError as error:
            message = self._uncertain_message(attempt, str(error))
            if self.on_uncertain_submit == "fail":
                raise AirflowFailException(message) from None
            raise AirflowException(
                f"{message}. A retry submits again, as on_uncertain_submit='resubmit' asks"
            ) from None
        except Exception:
            if store is not None:
                store.delete(STATE_KEY)  # the vendor's answer proved that no job was made
            raise
        if store is not None:
            store.set(STATE_KEY, {**attempt, "task_id": task_id})
        return task_id

    def _uncertain_message(self, attempt: Mapping[str, Any], cause: str) -> str:
        return (
            f"A {self.api} submit sent at {attempt.get('attempted_at')} may have created a billed job: {cause}. "
            f"Look in the {self.api} console for a task created at that time before running this task again; "
            "to submit anyway, knowing it may pay twice, set on_uncertain_submit='resubmit'"
        )

    def _resume(self, store: Any, hook: GenMediaHook, fingerprint: str) -> tuple[str | None, GenerationResult | None]:
        """The stored vendor task and its state when it can still serve this request; (None, None) to submit."""
        stored = store.get(STATE_KEY) if store is not None else None
        if not isinstance(stored, dict) or stored.get("api") != self.api:
            return None, None
        if stored.get("fingerprint") != fingerprint:
            self.log.warning("The request changed since the earlier %s submit: submitting anew", self.api)
            return None, None
        if stored.get("task_id") is None:
            cause = "an earlier try sent it and got no answer that says whether a job was created"
            if self.on_uncertain_submit == "fail":
                raise AirflowFailException(self._uncertain_message(stored, cause))
            self.log.warning(
                "An earlier %s submit at %s may have created a job; submitting again as on_uncertain_submit="
                "'resubmit' asks (this may pay twice)",
                self.api,
                stored.get("attempted_at"),
            )
            return None, None
        task_id = str(stored["task_id"])
        try:
            result = hook.get_result(self.api, task_id)
        except GenMediaNotFoundError:
            self.log.warning("%s no longer knows task %s: submitting anew", self.api, task_id)
            return None, None
        if result.status in (TaskStatus.SUCCEEDED, TaskStatus.QUEUED, TaskStatus.RUNNING):
            self.log.info("Resuming %s task %s (%s) from an earlier try: no new job", self.api, task_id, result.status)
            return task_id, result
        self.log.warning(
            "Earlier %s task %s ended %s (%s): submitting anew", self.api, task_id, result.status, result.reason
        )
        return None, None

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume from the trigger: the result json, or the failure the event describes."""
        result = result_from_event(event)
        store = context.get("task_state_store")
        stored = store.get(STATE_KEY) if store is not None else None
        request = (
            stored.get("request") if isinstance(stored, dict) and stored.get("task_id") == result.task_id else None
        )
        return self._complete(result, request if isinstance(request, dict) else None)

    def _complete(self, result: GenerationResult, request: Mapping[str, Any] | None) -> dict[str, Any]:
        """The result json returned to XCom: outputs and metadata (with the request's prompt and model), never media
        bytes."""
        self.log.info("%s task %s succeeded with %d output(s)", self.api, result.task_id, len(result.outputs))
        return get_api(self.api).complete(result, request).model_dump(mode="json")
