"""`NsfwFilterOperator`: keep the outputs that are safe for work in an Airflow task. The engine behind it (the
vendor's verdicts, a threshold, the built-in local model or a user's own scorer, and the policies for the rest) is
`airflow_provider_genmedia.nsfw`; `filter_nsfw` stays importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk import BaseOperator, Context

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.apis.base import validate_model
from airflow_provider_genmedia.downloads import DEFAULT_MAX_BYTES
from airflow_provider_genmedia.metrics import count_verdicts
from airflow_provider_genmedia.nsfw import (
    DEFAULT_THRESHOLD,
    FLAGGED,
    FlaggedPolicy,
    ScorerChoice,
    UncheckedPolicy,
    check_policies,
    check_scorer,
    filter_nsfw,
)
from airflow_provider_genmedia.outcomes import airflow_outcomes
from airflow_provider_genmedia.results import GenerationResult

__all__ = ["NsfwFilterOperator", "filter_nsfw"]


class NsfwFilterOperator(BaseOperator):
    """Drop, fail on or skip for outputs judged NSFW; return the result json with the safe outputs, their vendor
    indexes (``source_indexes``) and the others under ``rejected`` (see `filter_nsfw`).

    :param result: The `GenerationResult` json, usually the XCom of a generation task (templated).
    :param threshold: Confidence (0..100) above which an output is flagged; exactly at it is kept.
    :param unchecked: What to do with an output the vendor did not check: ``reject`` (default), ``allow``
        or ``fail`` (the task fails without retry).
    :param on_flagged: ``drop`` the flagged outputs (default), ``fail`` the task without retry, or ``skip``
        this task and its downstream.
    :param scorer: What judges the outputs the vendor did not score: ``"local"``, the built-in open_nsfw model of the
        ``nsfw`` extra (``pip install "airflow-provider-genmedia[nsfw]"``; images directly, videos by sampled frames,
        see `airflow_provider_genmedia.nsfw_local`), or your own callable: ``scorer(output, path)`` gets the
        `MediaOutput` and the file downloaded to a temporary path, and returns a confidence 0..100 or None. An
        output that is not decodable media is rejected with its reason. ``"local"`` without the extra installed
        fails when the operator is built, naming the extra.
    :param rescore: Score the outputs the vendor checked too (default False: the vendor's verdict stands where it
        exists); the scorer's verdict then replaces the vendor's, so that one model and one threshold judge all.
    :param max_bytes: The largest file downloaded for ``scorer``.
    :param vendor_conn_id: The vendor connection whose origin the scorer's downloads may reach even at a non-public
        address (see ``[genmedia] allowed_private_origins``); default: the API's default connection.
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
        scorer: ScorerChoice = None,
        rescore: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        vendor_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_policies(threshold, unchecked, on_flagged)
        check_scorer(scorer, rescore)
        super().__init__(**kwargs)
        self.result = result
        self.threshold = threshold
        self.unchecked = unchecked
        self.on_flagged = on_flagged
        self.scorer = scorer
        self.rescore = rescore
        self.max_bytes = max_bytes
        self.vendor_conn_id = vendor_conn_id
        #: The result json this run filtered and what it returned: what its lineage tells.
        self._lineage_results: tuple[Any, Any] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        """Filter the outputs, log what was kept and why the others went, and apply ``on_flagged``."""
        with airflow_outcomes():
            result = validate_model(GenerationResult, self.result, prefix="result")
            # The connection is read only when outputs are downloaded, for the scorer.
            from airflow_provider_genmedia.hooks.genmedia import fetch_policy_for

            policy = None if self.scorer is None else fetch_policy_for(get_api(result.api), self.vendor_conn_id)
            filtered = filter_nsfw(
                result,
                self.threshold,
                self.unchecked,
                self.scorer,
                rescore=self.rescore,
                max_bytes=self.max_bytes,
                fetch_policy=policy,
            )
        count_verdicts(result, filtered)
        self._lineage_results = (result, filtered)
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

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the vendor task (``externalQuery``) and what was kept, flagged and set aside
        (``genmedia``)."""
        from airflow_provider_genmedia.lineage import filter_lineage

        return filter_lineage(*(self._lineage_results or (None, None)))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage of a filter that failed or skipped on flagged outputs: what it judged."""
        return self.get_openlineage_facets_on_complete(task_instance)
