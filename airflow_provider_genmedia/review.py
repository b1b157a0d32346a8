"""The review step's logic, apart from Airflow: list the outputs the NSFW filter set aside, write the request a
reviewer sees, and apply the reviewers' answers to the filtered result. `MediaReviewOperator` (``operators.review``)
asks the reviewer; `PublishMediaOperator` applies the answers given ``reviews``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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
    judge = " ".join(str(part) for part in (nsfw.get("source") or "vendor", nsfw.get("model")) if part)
    score = f"{nsfw['confidence']:g} ({judge})" if nsfw.get("confidence") is not None else "not checked"
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
