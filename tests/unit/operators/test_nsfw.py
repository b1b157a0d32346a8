"""`NsfwFilterOperator`: what it keeps, logs, fails or skips on, and the names it re-exports."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia import nsfw as nsfw_engine
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.operators import nsfw
from airflow_provider_genmedia.operators.nsfw import NsfwFilterOperator
from genmedia_emulator.media import sample_mp4
from tests.unit.test_nsfw import image, result, video


def run(operator: NsfwFilterOperator) -> dict[str, Any]:
    return operator.execute({})  # type: ignore[arg-type]


def test_operator_drops_flagged_outputs_and_logs_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    filtered = run(NsfwFilterOperator(task_id="nsfw", result=result(image(97.5), image(1.2), video())))
    assert filtered["source_indexes"] == [1]
    message = next(line for line in capsys.readouterr().out.splitlines() if "NSFW filter" in line)
    assert "kept 1 output(s), rejected 2" in message
    assert "output 0: vendor NSFW confidence 97.5" in message
    assert "output 2: not checked for NSFW" in message


def test_operator_fails_without_retry_on_flagged_outputs() -> None:
    with pytest.raises(AirflowFailException, match=r"1 output\(s\) flagged as NSFW"):
        run(NsfwFilterOperator(task_id="nsfw", result=result(image(97.5), image(1.2)), on_flagged="fail"))


def test_operator_skips_downstream_on_flagged_outputs() -> None:
    with pytest.raises(AirflowSkipException, match="flagged as NSFW"):
        run(NsfwFilterOperator(task_id="nsfw", result=result(image(97.5)), on_flagged="skip"))


@pytest.mark.parametrize("on_flagged", ["fail", "skip"])
def test_unchecked_rejections_do_not_count_as_flagged(on_flagged: Any) -> None:
    filtered = run(NsfwFilterOperator(task_id="nsfw", result=result(video(), image(3.0)), on_flagged=on_flagged))
    assert filtered["source_indexes"] == [1]


def test_operator_logs_only_its_own_rejections_of_a_filtered_result(capsys: pytest.CaptureFixture[str]) -> None:
    first = run(NsfwFilterOperator(task_id="first", result=result(image(90.0), image(40.0), image(10.0))))
    second = run(NsfwFilterOperator(task_id="second", result=first, threshold=20))
    message = next(line for line in capsys.readouterr().out.splitlines() if "threshold 20" in line)
    assert "kept 1 output(s), rejected 1 (output 1: vendor NSFW confidence 40" in message
    assert (second["source_indexes"], [item["index"] for item in second["rejected"]]) == ([2], [0, 1])


def test_operator_fails_without_retry_on_a_result_that_does_not_validate() -> None:
    broken = result(image(1.0), image(2.0)) | {"source_indexes": [0]}
    with pytest.raises(AirflowFailException, match="result: source_indexes has 1 entries for 2 outputs"):
        run(NsfwFilterOperator(task_id="nsfw", result=broken))


def test_operator_fails_without_retry_on_unchecked_outputs_with_fail() -> None:
    with pytest.raises(AirflowFailException, match="was not checked for NSFW"):
        run(NsfwFilterOperator(task_id="nsfw", result=result(video()), unchecked="fail"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"threshold": -1}, "threshold: must be from 0 to 100, not -1"),
        ({"threshold": 100.5}, "threshold: must be from 0 to 100, not 100.5"),
        ({"unchecked": "ignore"}, "unchecked: must be one of ('reject', 'allow', 'fail'), not 'ignore'"),
        ({"on_flagged": "warn"}, "on_flagged: must be one of ('drop', 'fail', 'skip'), not 'warn'"),
    ],
)
def test_operator_refuses_bad_arguments(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(GenMediaValidationError) as error:
        NsfwFilterOperator(task_id="nsfw", result={}, **arguments)
    assert str(error.value) == message


def test_result_is_templated() -> None:
    assert "result" in NsfwFilterOperator.template_fields


def test_filter_nsfw_stays_importable_from_the_operators_module() -> None:
    assert nsfw.filter_nsfw is nsfw_engine.filter_nsfw
    assert nsfw.filter_nsfw(result(image(97.5), image(1.2))).source_indexes == [1]


def test_the_local_scorer_without_the_extra_fails_when_the_operator_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        GenMediaValidationError, match=r'missing: onnxruntime\): pip install "airflow-provider-genmedia\[nsfw\]"'
    ):
        NsfwFilterOperator(task_id="nsfw", result={}, scorer="local")


@pytest.mark.usefixtures("trusted_httpserver")
def test_the_operator_scores_locally_and_rescores_when_asked(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v.mp4").respond_with_data(sample_mp4(), content_type="video/mp4")
    vendor_checked = image(97.5, url=httpserver.url_for("/v.mp4")).model_copy(update={"kind": "video"})
    unchecked = video(httpserver.url_for("/v.mp4"))
    kept = run(NsfwFilterOperator(task_id="nsfw", result=result(vendor_checked, unchecked), scorer="local"))
    assert kept["source_indexes"] == [1] and kept["outputs"][0]["nsfw"]["source"] == "local"
    assert kept["outputs"][0]["nsfw"]["frames_checked"] == 2
    rescored = run(
        NsfwFilterOperator(task_id="nsfw2", result=result(vendor_checked, unchecked), scorer="local", rescore=True)
    )
    assert rescored["source_indexes"] == [0, 1]
    assert [output["nsfw"]["source"] for output in rescored["outputs"]] == ["local", "local"]
