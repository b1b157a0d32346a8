from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from airflow_provider_genmedia.results import (
    GenerationResult,
    MediaOutput,
    NsfwVerdict,
    RejectedOutput,
    TaskStatus,
    elide_blobs,
)


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


def test_elide_blobs_replaces_binary_data_by_its_size() -> None:
    data = bytes(range(256)) * 4
    body = {"image": data, "frames": [bytearray(b"abc"), memoryview(data)], "seed": 42}
    assert elide_blobs(body) == {
        "image": "<1024 bytes elided>",
        "frames": ["<3 bytes elided>", "<1024 bytes elided>"],
        "seed": 42,
    }
    assert elide_blobs(b"") == "<0 bytes elided>"


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
    assert dumped["outputs"][0]["nsfw"] == {
        "checked": True,
        "confidence": 3.0,
        "source": "vendor",
        "model": None,
        "frames_checked": None,
        "worst_frame_seconds": None,
    }
    assert GenerationResult.model_validate(dumped) == result


def test_a_filtered_result_as_xcom_held_it_before_the_typed_fields_still_validates() -> None:
    output = {
        "url": "https://cdn.example/1.png?sig=x",
        "kind": "image",
        "format": "png",
        "expires_at": None,
        "nsfw": None,
    }
    stored = {
        "api": "novita",
        "task_id": "t-1",
        "status": "succeeded",
        "outputs": [output],
        "request": {"request": {"prompt": "a mug"}},
        "raw": {},
        "source_indexes": [3],
        "rejected": [
            {"index": 0, "output": output, "reason": "not checked for NSFW", "cause": "unchecked"},
            {"index": 1, "output": output, "reason": "flagged; rejected by ada", "cause": "flagged", "reviewer": "ada"},
        ],
        "approved": [{"index": 3, "reviewer": "ada", "responded_at": "2026-11-23T12:00:00+00:00"}],
    }
    result = GenerationResult.model_validate(stored)
    assert result.indexed_outputs() == [(3, MediaOutput.model_validate(output))]
    assert [(item.index, item.cause, item.reviewer) for item in result.rejected] == [
        (0, "unchecked", None),
        (1, "flagged", "ada"),
    ]
    assert result.approved[0].responded_at == datetime(2026, 11, 23, 12, tzinfo=UTC)
    dumped = result.model_dump(mode="json")
    assert {key: dumped[key] for key in stored} == stored | {
        "rejected": [
            stored["rejected"][0] | {"reviewer": None, "preview": None},
            stored["rejected"][1] | {"preview": None},
        ],
        "approved": [{"index": 3, "reviewer": "ada", "responded_at": "2026-11-23T12:00:00Z"}],
    }
    assert (dumped["prompt"], dumped["model"]) == (None, None)


def test_an_unfiltered_result_numbers_its_outputs_from_zero_and_a_mismatch_is_refused() -> None:
    outputs = [MediaOutput(url=f"http://x/{index}.png", kind="image") for index in range(2)]
    result = GenerationResult(api="novita", task_id="t-1", status=TaskStatus.SUCCEEDED, outputs=outputs)
    assert [index for index, _ in result.indexed_outputs()] == [0, 1]
    with pytest.raises(ValidationError, match="source_indexes has 1 entries for 2 outputs"):
        GenerationResult(api="novita", task_id="t-1", status=TaskStatus.SUCCEEDED, outputs=outputs, source_indexes=[1])
    with pytest.raises(ValidationError, match="cause"):
        RejectedOutput(index=0, output=outputs[0], reason="?", cause="maybe")  # type: ignore[arg-type]


def test_a_verdict_stored_before_it_had_a_source_loads_as_the_vendors() -> None:
    verdict = NsfwVerdict.model_validate({"checked": True, "confidence": 12.5})
    assert (verdict.source, verdict.model, verdict.frames_checked, verdict.worst_frame_seconds) == (
        "vendor",
        None,
        None,
        None,
    )


def test_a_local_video_verdict_round_trips_through_json() -> None:
    verdict = NsfwVerdict(
        checked=True, confidence=64.0, source="local", model="open_nsfw 1.1", frames_checked=16, worst_frame_seconds=7.5
    )
    assert NsfwVerdict.model_validate_json(verdict.model_dump_json()) == verdict
    with pytest.raises(ValueError, match="source"):
        NsfwVerdict.model_validate({"checked": True, "source": "guess"})
