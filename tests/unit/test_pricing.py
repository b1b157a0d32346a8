"""The connection extra ``prices``: its shape, its errors, and the cost it gives a job's usage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_genmedia.apis import API_NAMES, get_api
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.pricing import parse_prices, usage_summary
from airflow_provider_genmedia.results import GenerationResult, TaskStatus, Usage

PRICES = {
    "currency": "USD",
    "novita": {"per_output": 0.002, "/v3/async/img2img": {"per_job": 0.001, "per_output": 0.0015}},
    "bailian": {"per_video_second": 0.1},
    "jimeng": {"per_job": 0.35},
    "avatar": {"per_job": 0.05, "per_video_second": 0.01},
}


def prices(value: Any = None) -> Any:
    parsed = parse_prices(PRICES if value is None else value, API_NAMES)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("api", "path", "usage", "cost"),
    [
        ("novita", "/v3/async/img2img", Usage(outputs=4), 0.001 + 4 * 0.0015),
        ("novita", "/v3/async/txt2img", Usage(outputs=4), 4 * 0.002),
        ("novita", None, Usage(outputs=1), 0.002),
        ("bailian", "/task/bailian/text2video", Usage(video_seconds=10), 1.0),
        ("jimeng", "/task/jimeng/image2video", Usage(video_seconds=5), 0.35),
        ("avatar", "/avatar/generation", Usage(video_seconds=12), 0.05 + 0.12),
    ],
)
def test_estimated_cost_is_per_job_plus_per_output_plus_per_video_second(
    api: str, path: str | None, usage: Usage, cost: float
) -> None:
    estimated = prices().estimate(api, path, usage)
    assert estimated.estimated_cost == pytest.approx(cost)
    assert estimated.currency == "USD"
    assert estimated.model_copy(update={"estimated_cost": None, "currency": None}) == usage


def test_no_estimate_where_nothing_prices_the_job() -> None:
    only_endpoints = prices({"currency": "EUR", "novita": {"/v3/async/img2img": {"per_output": 0.01}}})
    assert only_endpoints.estimate("novita", "/v3/async/txt2img", Usage()).estimated_cost is None
    assert only_endpoints.estimate("bailian", "/task/bailian/text2video", Usage()).estimated_cost is None


def test_a_price_per_video_second_without_a_known_length_gives_no_estimate() -> None:
    assert prices().estimate("avatar", "/avatar/generation", Usage()).estimated_cost is None


def test_free_is_a_price() -> None:
    assert prices({"currency": "USD", "jimeng": {"per_job": 0}}).estimate("jimeng", None, Usage()).estimated_cost == 0


def test_the_connection_form_stores_the_extra_as_json_text() -> None:
    assert prices(json.dumps(PRICES)) == prices()


@pytest.mark.parametrize("empty", [None, "", {}])
def test_an_empty_extra_means_no_prices(empty: Any) -> None:
    assert parse_prices(empty, API_NAMES) is None


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ("{not json", "prices", "is not valid JSON"),
        ([1, 2], "prices", "must be a JSON object"),
        ({"novita": {"per_output": 1}}, "prices.currency", "Field required"),
        ({"currency": "USD", "novitaa": {}}, "prices.novitaa", "is not an API of this connection"),
        ({"currency": "USD", "novita": {"per_output": -1}}, "prices.novita.per_output", "greater than or equal to 0"),
        ({"currency": "USD", "novita": {"per_outputs": 1}}, "prices.novita", "unknown key 'per_outputs'"),
        ({"currency": "USD", "novita": {"v3/async/img2img": {}}}, "prices.novita", "starting with /"),
        (
            {"currency": "USD", "novita": {"/v3/async/img2img": {"per_output": "cheap"}}},
            "prices.novita./v3/async/img2img.per_output",
            "valid number",
        ),
        (
            {"currency": "USD", "novita": {"/v3/async/img2img": {"per_image": 1}}},
            "prices.novita./v3/async/img2img.per_image",
            "Extra inputs are not permitted",
        ),
        ({"currency": "", "jimeng": {"per_job": 1}}, "prices.currency", "at least 1 character"),
    ],
)
def test_a_bad_extra_names_the_field(value: Any, field: str, words: str) -> None:
    with pytest.raises(GenMediaValidationError) as caught:
        parse_prices(value, API_NAMES)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_a_connection_prices_only_the_apis_it_serves() -> None:
    with pytest.raises(GenMediaValidationError, match=r"prices\.bailian: is not an API of this connection"):
        parse_prices({"currency": "USD", "bailian": {"per_video_second": 1}}, ("novita",))


def test_complete_prices_the_job_at_its_endpoint() -> None:
    body = {"request": {"image_num": 2, "width": 256, "height": 192, "prompt": "a dog"}}
    result = GenerationResult(api="novita", task_id="t", status=TaskStatus.SUCCEEDED)
    usage = get_api("novita").complete(result, body, path="/v3/async/img2img", prices=prices()).usage
    assert usage == Usage(outputs=2, resolution="256x192", estimated_cost=0.004, currency="USD")


def test_usage_summary_is_one_line_with_the_cost() -> None:
    usage = Usage(outputs=2, resolution="256x192", estimated_cost=0.004, currency="USD")
    assert usage_summary(usage) == "2 outputs, 256x192; estimated cost 0.004 USD"
    video = Usage(video_seconds=5, resolution="720P", reported={"video_duration": 5})
    assert usage_summary(video) == (
        "1 output, 5 s of video, 720P, vendor reported video_duration=5; "
        "no estimated cost (no price for it in the connection extra prices)"
    )
    assert usage_summary(None) == "usage unknown"
