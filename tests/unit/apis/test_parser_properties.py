"""Properties of every adapter's parsers (``parse_submit``, ``parse_progress``, ``parse_result``, ``task_failure``,
``parse_error``, ``reported_usage``), for each API of `airflow_provider_genmedia.apis`: on any JSON answer and on the
vendors' documented answers mutated, a parser returns its reading or raises the provider's own error, and what it
returns can be stored. Each example goes through every API's parsers (another vendor's answer is one more odd answer),
so that every parser sees all the examples while each is generated once."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from airflow_provider_genmedia.apis import API_NAMES, get_api
from tests.unit.apis.conftest import seed_example
from tests.unit.apis.parser_properties import check_parsers
from tests.unit.strategies import answers

#: The documented answers of each API (tests/unit/apis/seed_examples, docs/vendor-sources.md), and submit answers and
#: error envelopes as the adapters' own tests have them.
EXAMPLES: dict[str, list[Any]] = {
    "novita": [
        seed_example(name)
        for name in (
            "novita_task_result",
            *(f"novita_img2img_{n}_{kind}" for n in (1, 2, 3, 4) for kind in ("submit", "result")),
        )
    ],
    "jimeng": [
        seed_example("jimeng_result"),
        {"code": 10000, "message": "Success", "data": {"task_id": "7392616336519610409"}},
        {"code": 50412, "message": "Text Risk Not Pass", "data": None},
    ],
    "bailian": [
        seed_example("bailian_result"),
        {"output": {"task_id": "a", "task_status": "PENDING"}, "request_id": "r"},
        {"code": "Arrearage", "message": "Arrearage: account in arrears"},
    ],
    "avatar": [
        seed_example("avatar_result"),
        {"code": 0, "data": {"id": "a"}},
        {"code": 4001, "message": "insufficient balance"},
    ],
}


def test_the_examples_cover_every_api() -> None:
    assert sorted(EXAMPLES) == sorted(API_NAMES)


@given(answers(*(example for examples in EXAMPLES.values() for example in examples)))
def test_every_parser_returns_a_reading_or_raises_a_provider_error(body: Any) -> None:
    for name in API_NAMES:
        check_parsers(get_api(name), body)
