"""The review step's logic, apart from Airflow: list the outputs the NSFW filter set aside, write the request a
reviewer sees, and apply the reviewers' answers to the filtered result. `MediaReviewOperator` (``operators.review``)
asks the reviewer; `PublishMediaOperator` applies the answers given ``reviews``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_genmedia.apis.base import validate_model
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.nsfw import UNDECODABLE
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, RejectedOutput, ReviewApproval

APPROVE, REJECT = "Approve", "Reject"


def review_items(*filtered: Mapping[str, Any] | GenerationResult) -> list[dict[str, Any]]:
    """The outputs `NsfwFilterOperator` set aside, one review request each: every entry of the filtered results'
    ``rejected`` lists with the API, the vendor task id, the prompt and the model. An output that is not decodable
    media is left out: there is nothing to look at, and it stays listed as rejected."""
    items = []
    for entry in filtered:
        result = validate_model(GenerationResult, entry, prefix="result")
        context = {"api": result.api, "task_id": result.task_id, "prompt": result.prompt, "model": result.model}
        items += [{**item.model_dump(mode="json"), **context} for item in result.rejected if item.cause != UNDECODABLE]
    return items


def _judge(nsfw: Mapping[str, Any]) -> str:
    """Who scored, and for a video how many frames and when the worst shows."""
    judge = " ".join(str(part) for part in (nsfw.get("source") or "vendor", nsfw.get("model")) if part)
    if nsfw.get("worst_frame_seconds") is not None:
        judge += f"; worst of {nsfw.get('frames_checked')} frames, at {nsfw['worst_frame_seconds']:.1f} s"
    return judge


def review_body(item: Mapping[str, Any]) -> str:
    """The Markdown body of a review request: the output itself (an image shown; for a video its worst frame shown
    where ``preview_url`` holds a link to it, and the video linked at that frame), why it was set aside, its NSFW
    score and who gave it, and until when its link works."""
    output = item.get("output") or {}
    url, kind = str(output.get("url") or ""), output.get("kind") or "output"
    nsfw = output.get("nsfw") or {}
    score = f"{nsfw['confidence']:g} ({_judge(nsfw)})" if nsfw.get("confidence") is not None else "not checked"
    index, worst = item.get("index"), nsfw.get("worst_frame_seconds")
    if kind == "image":
        lines = [f"![output {index}]({url})", ""]
    elif worst is not None:
        at = f"{worst:.1f} s"
        preview = item.get("preview_url")
        lines = [f"![the worst frame of output {index}, at {at}]({preview})", ""] if preview else []
        # A media fragment (https://www.w3.org/TR/media-frags/#naming-time) opens the video at that frame.
        lines += [f"[Open the {kind} at {at}]({url}#t={worst:.1f})", ""]
    else:
        lines = [f"[Open the {kind}]({url})", ""]
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
    listed in ``approved``, and the rejected ones marked with their reviewer. Only the reviews of this result's vendor
    task apply (a batch reviews the outputs of many tasks at once); a review of an output this result did not set
    aside is refused.

    :param result: `NsfwFilterOperator`'s result (``outputs``, ``source_indexes``, ``rejected``).
    :param reviews: `MediaReviewOperator` results (None or empty when nothing was reviewed).
    """
    generation = validate_model(GenerationResult, result, prefix="result")
    task = (generation.api, generation.task_id)
    decisions = {
        review["index"]: review
        for review in reviews or []
        if isinstance(review, Mapping) and (review.get("api"), review.get("task_id")) == task
    }
    if not decisions:
        return generation
    unknown = sorted(set(decisions) - {entry.index for entry in generation.rejected})
    if unknown:
        raise GenMediaValidationError(
            "reviews", f"{generation.api} task {generation.task_id} set aside no output {unknown[0]} to review"
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
