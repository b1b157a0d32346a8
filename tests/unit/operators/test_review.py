"""`MediaReviewOperator`, publishing with reviews, and the review names importable from ``operators.review``."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS
from PIL import Image

from airflow_provider_genmedia import review
from airflow_provider_genmedia.exceptions import GenMediaUnsupportedError, GenMediaValidationError
from airflow_provider_genmedia.operators import review as review_operators
from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.operators.review import MediaReviewOperator
from tests.s3_fixtures import BUCKET, S3_CONN_ID


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


def flagged_video_item() -> dict[str, Any]:
    """A review item of a video the local model flagged, with its worst frame as the filter keeps it."""
    frame = io.BytesIO()
    Image.new("RGB", (32, 18), (200, 30, 30)).save(frame, format="JPEG")
    nsfw = {"checked": True, "confidence": 91.0, "source": "local", "frames_checked": 5, "worst_frame_seconds": 2.5}
    output = {"url": "https://vendor.example/v.mp4", "kind": "video", "format": "mp4", "nsfw": nsfw}
    preview = "data:image/jpeg;base64," + base64.b64encode(frame.getvalue()).decode()
    return {"index": 1, "output": output, "reason": "flagged", "api": "jimeng", "task_id": "t/7", "preview": preview}


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="human-in-the-loop tasks need Airflow 3.1+")
def test_a_flagged_videos_worst_frame_is_stored_and_shown_through_a_signed_link(s3_server: str) -> None:
    item = flagged_video_item()
    operator = MediaReviewOperator(
        task_id="review", item=item, preview_destination=f"s3://{S3_CONN_ID}@{BUCKET}/frames"
    )
    operator._fill_request()
    picture = operator.body.splitlines()[0]
    assert picture.startswith("![the worst frame of output 1, at 2.5 s](http")
    link = picture.split("](", 1)[1].rstrip(")")
    assert "/frames/jimeng_t_7_1.worst-frame.jpg?" in link and "Signature=" in link
    shown = requests.get(link, timeout=10)
    assert shown.status_code == 200 and shown.content == base64.b64decode(item["preview"].partition(",")[2])


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="human-in-the-loop tasks need Airflow 3.1+")
def test_where_the_store_cannot_sign_the_frame_is_kept_and_the_video_linked_at_it(tmp_path: Path) -> None:
    operator = MediaReviewOperator(task_id="review", item=flagged_video_item(), preview_destination=tmp_path.as_uri())
    operator._fill_request()
    assert (tmp_path / "jimeng_t_7_1.worst-frame.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert operator.body.startswith("[Open the video at 2.5 s](https://vendor.example/v.mp4#t=2.5)")


def test_human_review_is_available_from_airflow_3_1() -> None:
    assert review_operators.HUMAN_REVIEW_AVAILABLE is AIRFLOW_V_3_1_PLUS


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="human-in-the-loop tasks need Airflow 3.1+")
def test_rendering_writes_nothing_and_the_preview_is_stored_when_the_task_runs(tmp_path: Path) -> None:
    operator = MediaReviewOperator(task_id="review", item=flagged_video_item(), preview_destination=tmp_path.as_uri())

    operator.render_template_fields(context={})  # type: ignore[arg-type]
    assert (operator.body, list(tmp_path.iterdir())) == (None, [])

    operator._fill_request()  # what execute does before it posts the request
    assert (tmp_path / "jimeng_t_7_1.worst-frame.jpg").exists()
    assert operator.subject == "Publish output 1 of jimeng task t/7?"


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="human-in-the-loop tasks need Airflow 3.1+")
def test_a_templated_preview_destination_outside_destination_roots_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__GENMEDIA__DESTINATION_ROOTS", (tmp_path / "frames").as_uri())
    operator = MediaReviewOperator(task_id="review", item=flagged_video_item(), preview_destination="{{ params.to }}")
    operator.render_template_fields(context={"params": {"to": (tmp_path / "elsewhere").as_uri()}})  # type: ignore[arg-type]

    with pytest.raises(AirflowFailException, match=r"preview_destination: .*\[genmedia\] destination_roots"):
        operator.execute({})  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
