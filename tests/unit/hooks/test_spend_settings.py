"""The connection extras ``prices`` and ``min_balance``, as a hook reads them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.hooks.genmedia import GptGeHook, NovitaHook

KEY = "sk_test_spend_0123456789"


def connect(monkeypatch: pytest.MonkeyPatch, conn_type: str, **extra: Any) -> None:
    connection = {"conn_type": conn_type, "host": "http://127.0.0.1:9", "password": KEY, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_type.upper()}_SPEND", json.dumps(connection))


def test_prices_and_min_balance_are_read_from_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    prices = {"currency": "USD", "novita": {"/v3/async/img2img": {"per_output": 0.0015}}}
    connect(monkeypatch, "novita", prices=json.dumps(prices), min_balance="2.5")
    settings = NovitaHook("novita_spend").settings()
    assert settings.min_balance == 2.5
    assert settings.prices is not None
    assert settings.prices.apis["novita"].endpoints["/v3/async/img2img"].per_output == 0.0015
    assert KEY not in repr(settings)


def test_no_prices_and_no_min_balance_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "gptge")
    settings = GptGeHook("gptge_spend").settings()
    assert (settings.prices, settings.min_balance) == (None, None)


def test_a_gptge_connection_prices_its_three_apis(monkeypatch: pytest.MonkeyPatch) -> None:
    prices = {"currency": "CNY", "jimeng": {"per_job": 2}, "bailian": {"per_video_second": 0.7}, "avatar": {}}
    connect(monkeypatch, "gptge", prices=prices)
    assert set(GptGeHook("gptge_spend").settings().prices.apis) == {"jimeng", "bailian", "avatar"}  # type: ignore[union-attr]


def test_prices_for_an_api_of_the_other_connection_type_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "gptge", prices={"currency": "USD", "novita": {"per_output": 1}})
    with pytest.raises(GenMediaValidationError, match=r"prices\.novita: is not an API of this connection"):
        GptGeHook("gptge_spend").settings()


@pytest.mark.parametrize("value", ["-1", "plenty", "nan", "inf"])
def test_a_bad_min_balance_names_the_field(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    connect(monkeypatch, "novita", min_balance=value)
    with pytest.raises(GenMediaValidationError, match=r"^min_balance: must be a number of 0 or more"):
        NovitaHook("novita_spend").settings()
