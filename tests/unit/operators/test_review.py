"""`MediaReviewOperator`, publishing with reviews, and the review names importable from ``operators.review``."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_genmedia import review
from airflow_provider_genmedia.exceptions import GenMediaUnsupportedError, GenMediaValidationError
from airflow_provider_genmedia.operators import review as review_operators
from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.operators.review import MediaReviewOperator


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="human-in-the-loop tasks need Airflow 3.1+")
def test_the_review_operator_keeps_its_two_answers() -> None:
    operator = MediaReviewOperator(task_id="review", item={"index": 0})
    assert (operator.options, operator.defaults, operator.multiple) == (["Approve", "Reject"], ["Reject"], False)
    with pytest.raises(GenMediaValidationError, match="options"):
        MediaReviewOperator(task_id="review2", item={}, options=["Yes"])


def test_publishing_with_reviews_runs_when_nothing_needed_a_review() -> None:
    operator = PublishMediaOperator(task_id="publish", result={}, reviews=[], destination="file:///tmp/x")
    assert operator.trigger_rule == "none_failed_min_one_success"
    assert PublishMediaOperator(task_id="plain", result={}, destination="file:///tmp/x").trigger_rule == "all_success"


@pytest.mark.parametrize("name", ["APPROVE", "REJECT", "apply_reviews", "review_body", "review_items"])
def test_the_review_names_stay_importable_from_the_operators_module(name: str) -> None:
    assert getattr(review_operators, name) is getattr(review, name)


@pytest.mark.skipif(AIRFLOW_V_3_1_PLUS, reason="this Airflow has human-in-the-loop tasks")
def test_before_airflow_3_1_building_a_review_fails_naming_the_version() -> None:
    with pytest.raises(GenMediaUnsupportedError, match=r"MediaReviewOperator needs Airflow 3\.1 or later.*this is"):
        MediaReviewOperator(task_id="review", item={"index": 0})
