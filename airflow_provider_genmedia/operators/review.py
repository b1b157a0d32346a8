"""Human review of the outputs the NSFW filter set aside, with Airflow's human-in-the-loop operators.

`review_items` lists the outputs `NsfwFilterOperator` rejected (flagged, or never checked). Map `MediaReviewOperator`
over that list: each output becomes one request in the UI's Required Actions, with the image shown (a video linked)
in the request's body and two answers, Approve and Reject. `PublishMediaOperator` then takes the answers as
``reviews`` and publishes the filter's safe outputs plus the approved ones; the rejected ones stay listed in the
manifest with the reviewer's name::

    safe = NsfwFilterOperator(task_id="nsfw_filter", result=generated.output)
    set_aside = task(review_items)(safe.output)
    review = MediaReviewOperator.partial(task_id="review").expand(item=set_aside)
    PublishMediaOperator(task_id="publish", result=safe.output, reviews=review.output, destination=...)

(Airflow maps only over a task's return value, hence the small ``set_aside`` task.) When the filter sets nothing
aside, the mapped review has no task instance and Airflow marks it skipped; the publish task still runs, since
`PublishMediaOperator` given ``reviews`` defaults to the ``none_failed_min_one_success`` trigger rule. A request left
unanswered waits until ``response_timeout`` (none by default), then takes ``Reject``. The logic apart from Airflow
(`review_items`, `review_body`, `apply_reviews`) is `airflow_provider_genmedia.review`, importable from here too.

Human-in-the-loop tasks need Airflow 3.1 or later: on 3.0 this module still imports, and building a
`MediaReviewOperator` fails at DAG parse with an error naming the version needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from airflow import __version__ as airflow_version
from airflow.exceptions import AirflowOptionalProviderFeatureException
from airflow.sdk import BaseOperator, Context

from airflow_provider_genmedia.exceptions import GenMediaUnsupportedError, GenMediaValidationError
from airflow_provider_genmedia.review import APPROVE, REJECT, apply_reviews, review_body, review_items

__all__ = ["APPROVE", "REJECT", "MediaReviewOperator", "apply_reviews", "review_body", "review_items"]

try:
    from airflow.providers.standard.operators.hitl import HITLOperator
except (ImportError, AirflowOptionalProviderFeatureException):  # Airflow 3.0 has no human-in-the-loop tasks

    class HITLOperator(BaseOperator):  # type: ignore[no-redef]
        """Stands in for the standard provider's HITLOperator where Airflow lacks it: building one fails."""

        def __init__(self, **kwargs: Any) -> None:
            raise GenMediaUnsupportedError(
                f"{type(self).__name__} needs Airflow 3.1 or later (human-in-the-loop tasks); this is Airflow "
                f"{airflow_version}"
            )


class MediaReviewOperator(HITLOperator):
    """Ask a reviewer in the UI's Required Actions whether one output the NSFW filter set aside may be published.

    Map it over `review_items` of ``NsfwFilterOperator``'s result (see the module's documentation). Returns
    ``{"api", "task_id", "index", "output", "approved", "reviewer", "responded_at"}``.

    :param item: One entry of `review_items`: ``{"api", "task_id", "index", "output", "reason", "cause",
        "prompt", "model"}`` (templated).
    :param subject: The request's headline; default ``Publish output <index> of <api> task <task id>?``.
    :param body: The request's Markdown body; default: the image (a video linked), the reason, the NSFW score.
    :param response_timeout: How long to wait for an answer; then the request takes ``Reject``. Default: no limit.
    :param assigned_users: Who may answer (``{"id", "name"}`` or a list of them); default: anyone who may
        edit the DAG's task instances.
    """

    template_fields: Sequence[str] = ("item", "subject", "body")
    template_fields_renderers: ClassVar[dict[str, str]] = {"item": "json", "body": "md"}
    ui_color = "#fff8e1"

    def __init__(
        self,
        *,
        item: Any,
        subject: str | None = None,
        body: str | None = None,
        response_timeout: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        for fixed in ("options", "multiple", "defaults"):
            if fixed in kwargs:
                raise GenMediaValidationError(fixed, f"is fixed by MediaReviewOperator ({APPROVE} or {REJECT})")
        super().__init__(
            subject=subject or "",
            body=body,
            options=[APPROVE, REJECT],
            defaults=REJECT,
            multiple=False,
            response_timeout=response_timeout,
            **kwargs,
        )
        self.item = item

    def _do_render_template_fields(
        self, parent: Any, template_fields: Iterable[str], context: Context, jinja_env: Any, seen_oids: set[int]
    ) -> None:
        """Render as Airflow does (mapped tasks included), then write the default subject and body from the item,
        so that Rendered Templates shows the request as the reviewer sees it."""
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is self:
            self._fill_request()

    def _fill_request(self) -> None:
        """Write the default subject and body from the item, where none was given."""
        if not isinstance(self.item, Mapping):
            return
        if not self.subject:
            index, api, task_id = self.item.get("index"), self.item.get("api"), self.item.get("task_id")
            self.subject = f"Publish output {index} of {api} task {task_id}?"
        if not self.body:
            self.body = review_body(self.item)

    def execute(self, context: Context) -> Any:
        """Check the item, then post the request and wait for the answer (the task waits as ``awaiting_input``)."""
        if not isinstance(self.item, Mapping) or not isinstance(self.item.get("output"), Mapping):
            raise GenMediaValidationError("item", "expected one entry of review_items(<NsfwFilterOperator result>)")
        self._fill_request()
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """The reviewer's decision on the item, as `PublishMediaOperator` takes it in ``reviews``."""
        answer = super().execute_complete(context, event)
        approved = answer["chosen_options"] == [APPROVE]
        user = answer.get("responded_by_user") or {}
        reviewer = user.get("name") or user.get("id") or "the response timeout"
        responded_at = answer.get("responded_at")
        self.log.info(
            "%s %s output %s of %s task %s",
            reviewer,
            "approved" if approved else "rejected",
            self.item.get("index"),
            self.item.get("api"),
            self.item.get("task_id"),
        )
        return {
            "api": self.item.get("api"),
            "task_id": self.item.get("task_id"),
            "index": self.item.get("index"),
            "output": dict(self.item["output"]),
            "approved": approved,
            "reviewer": reviewer,
            "responded_at": responded_at.isoformat() if isinstance(responded_at, datetime) else responded_at,
        }
