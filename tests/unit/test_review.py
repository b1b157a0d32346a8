"""The review step's logic: what goes to review, the request a reviewer sees, and how the answers change the result."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.nsfw_filter import filter_nsfw
from airflow_provider_genmedia.review import apply_reviews, review_body, review_items


def image(index: int, confidence: float | None) -> dict[str, Any]:
    nsfw = {"checked": confidence is not None, "confidence": confidence}
    return {"url": f"https://vendor.example/{index}.png?sig=x", "kind": "image", "format": "png", "nsfw": nsfw}


RESULT: dict[str, Any] = {
    "api": "novita",
    "task_id": "t-1",
    "status": "succeeded",
    "outputs": [image(0, 1.2), image(1, 97.5), image(2, None), image(3, 88.0)],
    "request": {"request": {"prompt": "a mug", "model_name": "sd_xl_base_1.0.safetensors"}},
    "prompt": "a mug",
    "model": "sd_xl_base_1.0.safetensors",
}


def review(index: int, approved: bool, task_id: str = "t-1") -> dict[str, Any]:
    return {"api": "novita", "task_id": task_id, "index": index, "approved": approved, "reviewer": "ada"} | {
        "output": image(index, 97.5),
        "responded_at": "2026-11-23T12:00:00+00:00",
    }


def test_the_filter_lists_what_it_set_aside_for_review() -> None:
    filtered = filter_nsfw(RESULT, threshold=50.0)
    items = review_items(filtered)
    assert [(item["index"], item["cause"]) for item in items] == [(1, "flagged"), (2, "unchecked"), (3, "flagged")]
    assert {(item["api"], item["task_id"], item["prompt"], item["model"]) for item in items} == {
        ("novita", "t-1", "a mug", "sd_xl_base_1.0.safetensors")
    }


def test_approved_outputs_join_the_safe_ones_in_the_vendors_order() -> None:
    filtered = filter_nsfw(RESULT, threshold=50.0)
    reviewed = apply_reviews(filtered, [review(3, True), review(1, False)])
    assert reviewed.source_indexes == [0, 3]
    assert [output.url for output in reviewed.outputs] == [image(0, 0)["url"], image(3, 0)["url"]]
    rejected = {entry.index: entry for entry in reviewed.rejected}
    assert set(rejected) == {1, 2}
    assert rejected[1].reviewer == "ada" and "rejected by ada" in rejected[1].reason
    assert rejected[2].reviewer is None  # never reviewed: stays set aside as the filter said
    assert reviewed.model_dump(mode="json")["approved"] == [
        {"index": 3, "reviewer": "ada", "responded_at": "2026-11-23T12:00:00Z"}
    ]


def test_no_review_leaves_the_filtered_result_as_it_is() -> None:
    filtered = filter_nsfw(RESULT, threshold=50.0)
    assert apply_reviews(filtered, None) == filtered
    assert apply_reviews(filtered, []) == filtered


def test_a_review_of_another_task_is_refused() -> None:
    with pytest.raises(GenMediaValidationError, match="reviews"):
        apply_reviews(filter_nsfw(RESULT), [review(1, True, task_id="t-2")])


def test_the_request_body_shows_the_image_and_why() -> None:
    item = review_items(filter_nsfw(RESULT))[0] | {"output": image(1, 97.5) | {"expires_at": "2026-11-23T13:00:00Z"}}
    body = review_body(item)
    assert body.startswith(f"![output 1]({image(1, 0)['url']})")
    assert "97.5 (vendor)" in body and "a mug" in body and "2026-11-23T13:00:00Z" in body and "`t-1`" in body
    assert "**Model:** sd_xl_base_1.0.safetensors" in body
    video = review_body({"index": 0, "output": {"url": "https://v/0.mp4", "kind": "video"}, "reason": "not checked"})
    assert video.startswith("[Open the video](https://v/0.mp4)") and "not checked" in video


def test_the_engine_loads_no_operator() -> None:
    code = "import sys, airflow_provider_genmedia.review; print(*sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    operators = ("airflow_provider_genmedia.operators", "airflow.sdk.bases.operator", "airflow.providers.standard")
    assert [name for name in loaded if name.startswith(operators)] == []


def test_the_request_body_names_the_local_model_that_judged() -> None:
    output = image(1, 88.0)
    output["nsfw"] |= {"source": "local", "model": "open_nsfw 1.1"}
    assert "**NSFW score (0-100):** 88 (local open_nsfw 1.1)" in review_body({"index": 1, "output": output})
