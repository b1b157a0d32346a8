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

A flagged video is shown by its worst frame: the filter keeps a small JPEG of it in the item (``preview``), and
given ``preview_destination`` (an ``ObjectStoragePath`` URI) the request stores it there and shows it through a link
the store signs (``s3://``, ``gs://``, ``abfs://``...; fsspec's ``sign``:
https://filesystem-spec.readthedocs.io/en/latest/api.html#fsspec.spec.AbstractFileSystem.sign). Airflow's UI shows
only http(s) pictures, so without a signing store the body links the video at that frame instead.

Human-in-the-loop tasks need Airflow 3.1 or later: on 3.0 this module still imports, `HUMAN_REVIEW_AVAILABLE` is
False, and building a `MediaReviewOperator` fails with an error naming the version needed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from airflow import __version__ as airflow_version
from airflow.exceptions import AirflowOptionalProviderFeatureException
from airflow.sdk import BaseOperator, Context, ObjectStoragePath

from airflow_provider_genmedia.exceptions import GenMediaUnsupportedError, GenMediaValidationError
from airflow_provider_genmedia.metrics import count_review
from airflow_provider_genmedia.outcomes import airflow_outcomes
from airflow_provider_genmedia.review import APPROVE, REJECT, apply_reviews, review_body, review_items
from airflow_provider_genmedia.trust import DESTINATION_ROOTS, TemplatedFieldsRecorder

__all__ = [
    "APPROVE",
    "HUMAN_REVIEW_AVAILABLE",
    "REJECT",
    "MediaReviewOperator",
    "apply_reviews",
    "review_body",
    "review_items",
]
#: The longest a signed link to a worst frame lives (S3's limit for a presigned URL is 7 days).
MAX_PREVIEW_LINK = timedelta(days=7)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

try:
    from airflow.providers.standard.operators.hitl import HITLOperator

    #: True where Airflow has human-in-the-loop tasks (3.1+), so that a DAG can wire a review only there.
    HUMAN_REVIEW_AVAILABLE = True
except (ImportError, AirflowOptionalProviderFeatureException):  # Airflow 3.0 has no human-in-the-loop tasks
    HUMAN_REVIEW_AVAILABLE = False

    class HITLOperator(BaseOperator):  # type: ignore[no-redef]
        """Stands in for the standard provider's HITLOperator where Airflow lacks it: building one fails."""

        def __init__(self, **kwargs: Any) -> None:
            raise GenMediaUnsupportedError(
                f"{type(self).__name__} needs Airflow 3.1 or later (human-in-the-loop tasks); this is Airflow "
                f"{airflow_version}"
            )


class MediaReviewOperator(TemplatedFieldsRecorder, HITLOperator):
    """Ask a reviewer in the UI's Required Actions whether one output the NSFW filter set aside may be published.

    Map it over `review_items` of ``NsfwFilterOperator``'s result (see the module's documentation). Returns
    ``{"api", "task_id", "index", "output", "approved", "reviewer", "responded_at"}``.

    :param item: One entry of `review_items`: ``{"api", "task_id", "index", "output", "reason", "cause",
        "prompt", "model"}`` (templated).
    :param subject: The request's headline; default ``Publish output <index> of <api> task <task id>?``.
    :param body: The request's Markdown body; default: the image (a video linked), the reason, the NSFW score.
    :param response_timeout: How long to wait for an answer; then the request takes ``Reject``. Default: no limit.
    :param preview_destination: Where a flagged video's worst frame is stored to be shown in the body (an
        ``ObjectStoragePath`` URI whose store signs links, e.g. ``s3://bucket/review-frames``; templated). Default:
        the body links the video at its worst frame. A value rendered from a template must fall under ``[genmedia]
        destination_roots``.
    :param assigned_users: Who may answer (``{"id", "name"}`` or a list of them); default: anyone who may
        edit the DAG's task instances.
    """

    template_fields: Sequence[str] = ("item", "subject", "body", "preview_destination")
    template_fields_renderers: ClassVar[dict[str, str]] = {"item": "json", "body": "md"}
    ui_color = "#fff8e1"

    def __init__(
        self,
        *,
        item: Any,
        subject: str | None = None,
        body: str | None = None,
        response_timeout: timedelta | None = None,
        preview_destination: str | None = None,
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
        self.preview_destination = preview_destination

    def _fill_request(self) -> None:
        """Write the default subject and body from the item, where none was given: in `execute`, never while the
        templates are rendered, since the body's preview is written to object storage and signed."""
        if not isinstance(self.item, Mapping):
            return
        if not self.subject:
            index, api, task_id = self.item.get("index"), self.item.get("api"), self.item.get("task_id")
            self.subject = f"Publish output {index} of {api} task {task_id}?"
        if not self.body:
            self.body = review_body({**self.item, "preview_url": self._preview_url()})

    def _preview_url(self) -> str | None:
        """Store the item's worst frame under ``preview_destination`` and return a signed link to it, or None where
        there is no frame, no destination or a store that cannot sign."""
        preview = self.item.get("preview")
        if not preview or not self.preview_destination:
            return None
        task_id = _UNSAFE_NAME_CHARS.sub("_", str(self.item.get("task_id")))
        path = ObjectStoragePath(self.preview_destination) / (
            f"{self.item.get('api')}_{task_id}_{self.item.get('index')}.worst-frame.jpg"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(preview.partition(",")[2]))
        lifetime = min(self.response_timeout or MAX_PREVIEW_LINK, MAX_PREVIEW_LINK)
        try:
            return str(path.fs.sign(path.path, expiration=int(lifetime.total_seconds())))
        except NotImplementedError:
            self.log.info("The worst frame is stored at %s; its store cannot sign a link for the UI", path)
            return None

    def execute(self, context: Context) -> Any:
        """Check the item, then post the request and wait for the answer (the task waits as ``awaiting_input``)."""
        with airflow_outcomes():
            if not isinstance(self.item, Mapping) or not isinstance(self.item.get("output"), Mapping):
                raise GenMediaValidationError("item", "expected one entry of review_items(<NsfwFilterOperator result>)")
            self.check_locations(("preview_destination",), DESTINATION_ROOTS)
            self._fill_request()
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """The reviewer's decision on the item, as `PublishMediaOperator` takes it in ``reviews``."""
        answer = super().execute_complete(context, event)
        approved = answer["chosen_options"] == [APPROVE]
        user = answer.get("responded_by_user") or {}
        reviewer = user.get("name") or user.get("id") or "the response timeout"
        responded_at = answer.get("responded_at")
        count_review(str(self.item.get("api")), approved)
        self.log.info(
            "%s %s output %s of %s task %s",
            reviewer,
            "approved" if approved else "rejected",
            self.item.get("index"),
            self.item.get("api"),
            self.item.get("task_id"),
        )
        self.decision = {
            "api": self.item.get("api"),
            "task_id": self.item.get("task_id"),
            "index": self.item.get("index"),
            "output": dict(self.item["output"]),
            "approved": approved,
            "reviewer": reviewer,
            "responded_at": responded_at.isoformat() if isinstance(responded_at, datetime) else responded_at,
        }
        return self.decision

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the vendor task (``externalQuery``) and the decision on its output (``genmedia``)."""
        from airflow_provider_genmedia.lineage import review_lineage

        return review_lineage(getattr(self, "decision", None))
