"""Properties of reading a vendor's answer: whatever the status, headers and body, only the provider's own errors come
out, and neither the answer given back nor any error's message holds the connection's API key."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_genmedia.apis import API_NAMES, get_api
from airflow_provider_genmedia.exceptions import GenMediaError
from airflow_provider_genmedia.hooks.genmedia import GenMediaHook, GptGeHook, NovitaHook
from airflow_provider_genmedia.hooks.json_or_error import read_answer
from tests.unit.strategies import json_values, mutated

#: A key no answer would hold by chance: hex, so that none of its pieces is likely in generated text either.
KEY = secrets.token_hex(20)
#: The error bodies the vendors document (Novita, gpt.ge's gateway, Volcengine, DashScope), to mutate.
ERROR_EXAMPLES = [
    {"code": 401, "reason": "INVALID_API_KEY", "message": "invalid key", "metadata": {}},
    {"error": {"code": "invalid_api_key", "type": "auth", "message": "bad token"}},
    {"error": "unauthorized", "code": 401},
    {"code": 50412, "message": "Text Risk Not Pass", "data": None},
    {"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": "r"},
    {"msg": "insufficient balance", "code": 4001},
]


@st.composite
def with_key(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with the key put into one of its strings (at any place in it), or in place of a value or a key."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        name = draw(st.sampled_from(sorted(value)))
        if draw(st.booleans()):
            return {**value, name: draw(with_key(value[name]))}
        return {**{k: v for k, v in value.items() if k != name}, f"{name}{KEY}": value[name]}
    if isinstance(value, list) and value:
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], draw(with_key(value[index])), *value[index + 1 :]]
    if isinstance(value, str):
        cut = draw(st.integers(0, len(value)))
        return f"{value[:cut]}{KEY}{value[cut:]}"
    return KEY


def spliced(text: bytes, at: int) -> bytes:
    at = min(at, len(text))
    return text[:at] + KEY.encode() + text[at:]


json_bodies = st.one_of(json_values, *(mutated(example) for example in ERROR_EXAMPLES)).flatmap(with_key)
contents = st.one_of(
    json_bodies.map(lambda body: json.dumps(body).encode()),
    st.builds(spliced, st.binary(max_size=500), st.integers(0, 500)),
    # a page longer than the part of it an error message quotes, the key anywhere around the cuts
    st.builds(spliced, st.integers(1, 2100).map(lambda length: b"a" * length), st.integers(0, 2100)),
    st.builds(
        spliced, st.text(max_size=400).map(lambda text: f"<html><title>{text}</title>".encode()), st.integers(0, 400)
    ),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth),
    st.integers(4300, 5000).map(lambda digits: b"1" * digits),
)
headers = st.dictionaries(st.sampled_from(["Retry-After", "retry-after", "Content-Type"]), st.text(max_size=30))


@pytest.fixture(scope="module")
def hooks() -> dict[str, GenMediaHook]:
    """A hook of each connection type on a connection whose key is `KEY`, as the provider reads it."""
    with pytest.MonkeyPatch.context() as patch:
        made: dict[str, GenMediaHook] = {}
        for hook_class in (NovitaHook, GptGeHook):
            conn = {"conn_type": hook_class.conn_type, "host": "https://vendor.invalid", "password": KEY}
            patch.setenv(f"AIRFLOW_CONN_{hook_class.default_conn_name.upper()}", json.dumps(conn))
            hook = hook_class()
            assert hook.settings().api_key == KEY
            made[hook_class.conn_type] = hook
        return made


def no_key_in(error: BaseException) -> None:
    assert KEY not in str(error) and all(KEY not in str(arg) for arg in error.args)


@given(
    api=st.sampled_from(API_NAMES),
    status=st.integers(100, 599),
    headers=headers,
    content=contents,
)
def test_an_answer_gives_its_body_or_a_provider_error_and_never_the_key(
    hooks: dict[str, GenMediaHook], api: str, status: int, headers: dict[str, str], content: bytes
) -> None:
    adapter = get_api(api)
    scrub = hooks[adapter.conn_type]._scrub  # the hook's own scrubber of every message, fed the connection's key
    try:
        body = read_answer(adapter, status, headers, content, scrub)
    except GenMediaError as error:
        no_key_in(error)
        return
    assert 200 <= status < 300
    assert KEY not in json.dumps(body)
