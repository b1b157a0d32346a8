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
unanswered waits until ``response_timeout`` (none by default), then takes ``Reject``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Context

from airflow_provider_genmedia.apis.base import validate_model
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, RejectedOutput, ReviewApproval

APPROVE, REJECT = "Approve", "Reject"


def review_items(filtered: Mapping[str, Any] | GenerationResult) -> list[dict[str, Any]]:
    """The outputs `NsfwFilterOperator` set aside, one review request each: every entry of the filtered result's
    ``rejected`` list with the API, the vendor task id, the prompt and the model."""
    result = validate_model(GenerationResult, filtered, prefix="result")
    context = {"api": result.api, "task_id": result.task_id, "prompt": result.prompt, "model": result.model}
    return [{**item.model_dump(mode="json"), **context} for item in result.rejected]


def review_body(item: Mapping[str, Any]) -> str:
    """The Markdown body of a review request: the output itself (an image shown, anything else linked), why it was
    set aside, its NSFW score and until when its link works."""
    output = item.get("output") or {}
    url, kind = str(output.get("url") or ""), output.get("kind") or "output"
    nsfw = output.get("nsfw") or {}
    score = f"{nsfw['confidence']:g}" if nsfw.get("confidence") is not None else "not checked"
    index = item.get("index")
    lines = [f"![output {index}]({url})" if kind == "image" else f"[Open the {kind}]({url})", ""]
    lines += [
        f"- **Why it was set aside:** {item.get('reason') or 'unknown'}",
        f"- **NSFW score (0-100):** {score}",
        f"- **Vendor task:** {item.get('api')} `{item.get('task_id')}`, output {index}",
    ]
    if item.get("prompt"):
        lines.append(f"- **Prompt:** {item['prompt']}")
    if item.get("model"):
        lines.append(f"- **Model:** {item['model']}")
    if output.get("expires_at"):
        lines.append(
            f"- **Link valid until:** {output['expires_at']} (the vendor's signed link; once it expired an "
            "approved output is fetched again from the vendor task when published)"
        )
    lines += ["", f"**{APPROVE}** publishes it with the safe outputs; **{REJECT}** keeps it out."]
    return "\n".join(lines)


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


def apply_reviews(
    result: Mapping[str, Any] | GenerationResult, reviews: Iterable[Mapping[str, Any]] | None
) -> GenerationResult:
    """The filtered result with the approved outputs moved back among the kept ones (in the vendor's order) and
    listed in ``approved``, and the rejected ones marked with their reviewer; reviews of another vendor task are
    refused.

    :param result: `NsfwFilterOperator`'s result (``outputs``, ``source_indexes``, ``rejected``).
    :param reviews: `MediaReviewOperator` results (None or empty when nothing was reviewed).
    """
    generation = validate_model(GenerationResult, result, prefix="result")
    decisions = {review["index"]: review for review in reviews or [] if isinstance(review, Mapping)}
    if not decisions:
        return generation
    for review in decisions.values():
        if (review.get("api"), review.get("task_id")) != (generation.api, generation.task_id):
            raise GenMediaValidationError(
                "reviews", f"a review of {review.get('api')} task {review.get('task_id')} does not match the result"
            )
    kept: list[tuple[int, MediaOutput]] = generation.indexed_outputs()
    rejected: list[RejectedOutput] = []
    for entry in generation.rejected:
        decision = decisions.get(entry.index)
        if decision is None:
            rejected.append(entry)
        elif decision.get("approved"):
            kept.append((entry.index, entry.output))
        else:
            reviewer = decision.get("reviewer")
            reason = f"{entry.reason}; rejected by {reviewer} at {decision.get('responded_at')}"
            rejected.append(entry.model_copy(update={"reason": reason, "reviewer": reviewer}))
    kept.sort(key=lambda pair: pair[0])
    approved = [
        validate_model(ReviewApproval, {key: review.get(key) for key in ("index", "reviewer", "responded_at")})
        for review in sorted(decisions.values(), key=lambda review: review["index"])
        if review.get("approved")
    ]
    return generation.model_copy(
        update={
            "outputs": [output for _, output in kept],
            "source_indexes": [index for index, _ in kept],
            "rejected": rejected,
            "approved": approved,
        }
    )
