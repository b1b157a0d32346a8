"""Keep the outputs that are safe for work: the vendor's NSFW verdicts, a threshold, and policies for the rest.

An output whose confidence is above ``threshold`` is flagged (a confidence exactly at the threshold is
kept). An output the vendor never checked (videos, detection off, Novita's ``valid: false``) is scored by
the user's ``scorer`` when one is given, and otherwise follows ``unchecked``: ``reject`` drops it, ``allow``
keeps it, ``fail`` raises `UncheckedOutputError`. Rejected outputs are listed with their reason, so nothing
goes silently. `NsfwFilterOperator` (``operators.nsfw``) runs this in an Airflow task.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from airflow_provider_genmedia.apis.base import validate_model
from airflow_provider_genmedia.downloads import DEFAULT_MAX_BYTES, download_to
from airflow_provider_genmedia.exceptions import GenMediaValidationError, UncheckedOutputError
from airflow_provider_genmedia.results import (
    GenerationResult,
    MediaOutput,
    NsfwVerdict,
    RejectedOutput,
    RejectionCause,
)

UncheckedPolicy = Literal["reject", "allow", "fail"]
FlaggedPolicy = Literal["drop", "fail", "skip"]
#: Scores an output the vendor did not check: it gets the output and its file downloaded to local disk
#: (never held in memory, so videos work too) and returns a confidence 0..100, or None when it cannot tell.
Scorer = Callable[[MediaOutput, Path], float | None]
DEFAULT_THRESHOLD = 50.0
#: ``cause`` of a rejected output: judged NSFW, or never judged.
FLAGGED: RejectionCause = "flagged"
UNCHECKED: RejectionCause = "unchecked"


def check_policies(threshold: float, unchecked: str, on_flagged: str | None = None) -> None:
    """Refuse a threshold outside 0..100 or an unknown policy, naming the argument."""
    if not 0 <= threshold <= 100:
        raise GenMediaValidationError("threshold", f"must be from 0 to 100, not {threshold}")
    if unchecked not in get_args(UncheckedPolicy):
        raise GenMediaValidationError("unchecked", f"must be one of {get_args(UncheckedPolicy)}, not {unchecked!r}")
    if on_flagged is not None and on_flagged not in get_args(FlaggedPolicy):
        raise GenMediaValidationError("on_flagged", f"must be one of {get_args(FlaggedPolicy)}, not {on_flagged!r}")


def _score(scorer: Scorer, output: MediaOutput, max_bytes: int) -> float | None:
    """Download ``output`` to a temporary file and ask ``scorer`` about it."""
    with tempfile.TemporaryDirectory(prefix="genmedia-nsfw-") as folder:
        path = Path(folder) / f"media.{output.format or 'bin'}"
        with path.open("wb") as file:
            download_to(output.url, file, max_bytes=max_bytes)
        confidence = scorer(output, path)
    if confidence is not None and not 0 <= confidence <= 100:
        raise GenMediaValidationError("scorer", f"returned {confidence!r}, not a confidence from 0 to 100 or None")
    return confidence


def _judge(output: MediaOutput, scorer: Scorer | None, max_bytes: int) -> NsfwVerdict | None:
    """The output's NSFW verdict: the vendor's where it checked the output, else ``scorer``'s; None when neither
    could tell."""
    if output.nsfw is not None and output.nsfw.checked and output.nsfw.confidence is not None:
        return output.nsfw
    if scorer is None:
        return None
    confidence = _score(scorer, output, max_bytes)
    return None if confidence is None else NsfwVerdict(checked=True, confidence=confidence, source="scorer")


def filter_nsfw(
    result: Mapping[str, Any] | GenerationResult,
    threshold: float = DEFAULT_THRESHOLD,
    unchecked: UncheckedPolicy = "reject",
    scorer: Scorer | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> GenerationResult:
    """The result with only the kept outputs, their vendor indexes in ``source_indexes`` and the others added to
    ``rejected`` with their reason and cause; raise `UncheckedOutputError` when ``unchecked="fail"`` meets an output
    with no verdict. Pure unless ``scorer`` is given."""
    check_policies(threshold, unchecked)
    generation = validate_model(GenerationResult, result, prefix="result")
    kept: list[tuple[int, MediaOutput]] = []
    rejected = list(generation.rejected)
    for index, judged in generation.indexed_outputs():
        verdict = _judge(judged, scorer, max_bytes)
        output = judged if verdict is None else judged.model_copy(update={"nsfw": verdict})
        if verdict is None or verdict.confidence is None:
            if unchecked == "fail":
                raise UncheckedOutputError(
                    f"output {index} ({output.kind}) was not checked for NSFW (unchecked='fail')"
                )
            if unchecked == "allow":
                kept.append((index, output))
                continue
            reason, cause = f"not checked for NSFW ({output.kind}; unchecked='reject')", UNCHECKED
        elif verdict.confidence > threshold:
            reason = f"{verdict.source} NSFW confidence {verdict.confidence:g} is above the threshold {threshold:g}"
            cause = FLAGGED
        else:
            kept.append((index, output))
            continue
        rejected.append(RejectedOutput(index=index, output=output, reason=reason, cause=cause))
    return generation.model_copy(
        update={
            "outputs": [output for _, output in kept],
            "source_indexes": [index for index, _ in kept],
            "rejected": rejected,
        }
    )
