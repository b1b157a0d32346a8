from __future__ import annotations

import base64

from airflow_provider_genmedia.results import GenerationResult, MediaOutput, NsfwVerdict, TaskStatus, elide_blobs


def test_terminal_statuses() -> None:
    assert {status for status in TaskStatus if status.is_terminal} == {"succeeded", "failed", "canceled", "expired"}
    assert not TaskStatus.QUEUED.is_terminal
    assert not TaskStatus.RUNNING.is_terminal


def test_elide_blobs_replaces_plain_and_data_uri_base64_at_any_depth() -> None:
    blob = base64.b64encode(bytes(range(256)) * 8).decode()
    body = {
        "request": {
            "image_base64": blob,
            "prompt": "a cute dog",
            "units": [{"image_base64": f"data:image/png;base64,{blob}"}],
        },
        "binary_data_base64": [blob],
        "short": "aGVsbG8=",
    }
    elided = elide_blobs(body)
    assert elided["request"]["prompt"] == "a cute dog"
    assert elided["short"] == "aGVsbG8="
    assert elided["request"]["image_base64"] == f"<base64: {len(blob)} chars elided>"
    assert elided["request"]["units"][0]["image_base64"].startswith("<base64:")
    assert elided["binary_data_base64"][0].startswith("<base64:")
    assert blob not in repr(elided)


def test_long_prose_is_not_mistaken_for_base64() -> None:
    prompt = "A cute epic scene, with a kitten general in golden armor. " * 20
    assert elide_blobs({"orig_prompt": prompt}) == {"orig_prompt": prompt}


def test_result_round_trips_through_json() -> None:
    result = GenerationResult(
        api="novita",
        task_id="t-1",
        status=TaskStatus.SUCCEEDED,
        seed=42,
        outputs=[
            MediaOutput(url="http://x/a.png", kind="image", format="png", nsfw=NsfwVerdict(checked=True, confidence=3))
        ],
    )
    dumped = result.model_dump(mode="json")
    assert dumped["status"] == "succeeded"
    assert dumped["outputs"][0]["nsfw"] == {"checked": True, "confidence": 3.0}
    assert GenerationResult.model_validate(dumped) == result
