"""Keep the outputs that are safe for work: the vendor's NSFW verdicts, a threshold, and policies for the rest.

An output whose confidence is above ``threshold`` is flagged (a confidence exactly at the threshold is
kept). An output the vendor never checked (videos, detection off, Novita's ``valid: false``) is scored by
the user's ``scorer`` when one is given, and otherwise follows ``unchecked``: ``reject`` drops it, ``allow``
keeps it, ``fail`` fails the task. Rejected outputs are listed with their reason, so nothing goes silently.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_genmedia.apis.base import validate_model
from airflow_provider_genmedia.downloads import DEFAULT_MAX_BYTES, download_to
from airflow_provider_genmedia.exceptions import GenMediaError, GenMediaValidationError
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, RejectedOutput, RejectionCause

log = logging.getLogger(__name__)

UncheckedPolicy = Literal["reject", "allow", "fail"]
FlaggedPolicy = Literal["drop", "fail", "skip"]
#: Scores an output the vendor did not check: it gets the output and its file downloaded to local disk
#: (never held in memory, so videos work too) and returns a confidence 0..100, or None when it cannot tell.
Scorer = Callable[[MediaOutput, Path], float | None]
DEFAULT_THRESHOLD = 50.0
#: ``cause`` of a rejected output: judged NSFW, or never judged.
FLAGGED: RejectionCause = "flagged"
UNCHECKED: RejectionCause = "unchecked"


class UncheckedOutputError(GenMediaError):
    """An output had no NSFW verdict and the policy is ``unchecked="fail"``."""


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
    for index, output in generation.indexed_outputs():
        confidence, source = None, "vendor"
        if output.nsfw is not None and output.nsfw.checked and output.nsfw.confidence is not None:
            confidence = output.nsfw.confidence
        elif scorer is not None:
            confidence, source = _score(scorer, output, max_bytes), "scorer"
        if confidence is None:
            if unchecked == "fail":
                raise UncheckedOutputError(
                    f"output {index} ({output.kind}) was not checked for NSFW (unchecked='fail')"
                )
            if unchecked == "allow":
                kept.append((index, output))
                continue
            reason, cause = f"not checked for NSFW ({output.kind}; unchecked='reject')", UNCHECKED
        elif confidence > threshold:
            reason, cause = f"{source} NSFW confidence {confidence:g} is above the threshold {threshold:g}", FLAGGED
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


class NsfwFilterOperator(BaseOperator):
    """Drop, fail on or skip for outputs judged NSFW; return the result json with the safe outputs, their vendor
    indexes (``source_indexes``) and the others under ``rejected`` (see `filter_nsfw`).

    :param result: The `GenerationResult` json, usually the XCom of a generation task (templated).
    :param threshold: Confidence (0..100) above which an output is flagged; exactly at it is kept.
    :param unchecked: What to do with an output the vendor did not check: ``reject`` (default), ``allow``
        or ``fail`` (the task fails without retry).
    :param on_flagged: ``drop`` the flagged outputs (default), ``fail`` the task without retry, or ``skip``
        this task and its downstream.
    :param scorer: Your own check for outputs the vendor did not score: ``scorer(output, path)`` gets the
        `MediaOutput` and the file downloaded to a temporary path, and returns a confidence 0..100 or None.
    :param max_bytes: The largest file downloaded for ``scorer``.
    """

    template_fields: Sequence[str] = ("result",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"result": "json"}
    ui_color = "#fff3e0"

    def __init__(
        self,
        *,
        result: Any,
        threshold: float = DEFAULT_THRESHOLD,
        unchecked: UncheckedPolicy = "reject",
        on_flagged: FlaggedPolicy = "drop",
        scorer: Scorer | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        **kwargs: Any,
    ) -> None:
        check_policies(threshold, unchecked, on_flagged)
        super().__init__(**kwargs)
        self.result = result
        self.threshold = threshold
        self.unchecked = unchecked
        self.on_flagged = on_flagged
        self.scorer = scorer
        self.max_bytes = max_bytes

    def execute(self, context: Context) -> dict[str, Any]:
        """Filter the outputs, log what was kept and why the others went, and apply ``on_flagged``."""
        try:
            result = validate_model(GenerationResult, self.result, prefix="result")
            filtered = filter_nsfw(result, self.threshold, self.unchecked, self.scorer, max_bytes=self.max_bytes)
        except (UncheckedOutputError, GenMediaValidationError) as error:
            raise AirflowFailException(str(error)) from error
        rejected = filtered.rejected[len(result.rejected) :]
        reasons = "; ".join(f"output {item.index}: {item.reason}" for item in rejected)
        self.log.info(
            "NSFW filter (threshold %g): kept %d output(s), rejected %d%s",
            self.threshold,
            len(filtered.outputs),
            len(rejected),
            f" ({reasons})" if reasons else "",
        )
        flagged = [item for item in rejected if item.cause == FLAGGED]
        if flagged and self.on_flagged == "fail":
            raise AirflowFailException(f"{len(flagged)} output(s) flagged as NSFW (on_flagged='fail'): {reasons}")
        if flagged and self.on_flagged == "skip":
            raise AirflowSkipException(f"{len(flagged)} output(s) flagged as NSFW (on_flagged='skip')")
        return filtered.model_dump(mode="json")
