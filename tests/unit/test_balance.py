"""Reading each vendor's documented balance answer, and the min_balance rule."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_genmedia.balance import BALANCE_ROUTES, Balance, check_min_balance
from airflow_provider_genmedia.exceptions import GenMediaAPIError, GenMediaBalanceError

#: The example of https://novita.ai/docs/api-reference/basic-get-user-balance.
NOVITA_EXAMPLE = {
    "availableBalance": "1000000",
    "cashBalance": "800000",
    "creditLimit": "200000",
    "pendingCharges": "0",
    "outstandingInvoices": "0",
}
#: The examples of https://gpt.morphogen.top/en/query-token-quota.html and .../query-token-usage.html.
GPTGE_QUOTA = {"object": "billing_subscription", "has_payment_method": True, "soft_limit_usd": 5, "hard_limit_usd": 5}
GPTGE_USAGE = {"object": "list", "total_usage": 695.9646}


def answers(by_path: dict[str, Any]) -> Any:
    asked: list[str] = []

    async def fetch(path: str) -> Any:
        asked.append(path)
        return by_path[path]

    fetch.asked = asked  # type: ignore[attr-defined]
    return fetch


async def test_novitas_available_balance_is_in_ten_thousandths_of_a_dollar() -> None:
    balance = await BALANCE_ROUTES["novita"].read(answers({"/openapi/v1/billing/balance/detail": NOVITA_EXAMPLE}))
    assert (balance.amount, balance.currency) == (100.0, "USD")
    assert balance.detail == NOVITA_EXAMPLE


async def test_gptge_balance_is_the_keys_quota_less_its_usage_in_hundredths() -> None:
    fetch = answers({"/v1/dashboard/billing/subscription": GPTGE_QUOTA, "/v1/dashboard/billing/usage": GPTGE_USAGE})
    balance = await BALANCE_ROUTES["gptge"].read(fetch)
    assert balance.amount == pytest.approx(5 - 6.959646)
    assert balance.describe() == f"{5 - 6.959646:g} USD"


async def test_an_unlimited_gptge_key_reads_no_usage_and_never_refuses() -> None:
    fetch = answers({"/v1/dashboard/billing/subscription": {**GPTGE_QUOTA, "hard_limit_usd": 100000000}})
    balance = await BALANCE_ROUTES["gptge"].read(fetch)
    assert (balance.amount, balance.describe()) == (None, "unlimited")
    assert fetch.asked == ["/v1/dashboard/billing/subscription"]
    check_min_balance("gpt.ge", "gptge_default", balance, 1e9)


async def test_an_answer_without_the_amount_is_an_error_naming_it() -> None:
    with pytest.raises(GenMediaAPIError, match="holds no number availableBalance"):
        await BALANCE_ROUTES["novita"].read(answers({"/openapi/v1/billing/balance/detail": {"cashBalance": "1"}}))


def test_min_balance_refuses_below_and_lets_through_at_or_above() -> None:
    check_min_balance("Novita AI", "novita_default", Balance(1.0, "USD", {}), 1.0)
    with pytest.raises(GenMediaBalanceError) as raised:
        check_min_balance("Novita AI", "novita_default", Balance(0.25, "USD", {}), 1.0)
    assert str(raised.value) == (
        "Novita AI balance of connection 'novita_default' is 0.25 USD, below its min_balance 1: nothing was sent. "
        "Top up the account, or lower or clear the extra min_balance of connection 'novita_default' to submit anyway"
    )
