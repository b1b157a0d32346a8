"""The vendor's balance, read where the vendor documents a route for it, and the connection extra ``min_balance``
that refuses a submit while the balance is below it.

- Novita (``novita`` connections): ``GET /openapi/v1/billing/balance/detail``
  (https://novita.ai/docs/api-reference/basic-get-user-balance) answers ``{"availableBalance", "cashBalance",
  "creditLimit", "pendingCharges", "outstandingInvoices"}``, each a string in 1/10,000 USD (``"10000"`` is $1.00).
  ``availableBalance`` is what can still be spent: in the page's example it is the top-up left (``cashBalance``)
  plus the credit limit.
- gpt.ge (``gptge`` connections) documents two OpenAI-style billing routes of the key itself
  (https://gpt.morphogen.top/en/query-token-quota.html, https://gpt.morphogen.top/en/query-token-usage.html): ``GET
  /v1/dashboard/billing/subscription`` answers the key's quota in ``hard_limit_usd`` (100000000 when the quota is
  unlimited) and ``GET /v1/dashboard/billing/usage`` the amount used so far as ``total_usage``, in hundredths. What
  is left is the quota less the amount used: how the one-api/new-api gateway that gpt.ge runs computes both answers
  (inferred; neither page says it in words).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow_provider_genmedia.apis.base import mapping, number
from airflow_provider_genmedia.exceptions import GenMediaAPIError, GenMediaBalanceError

#: The connection extra that holds the threshold.
MIN_BALANCE_FIELD = "min_balance"

#: GETs one route of the connection's vendor and returns its JSON answer (the hook's transport, retries included).
Fetch = Callable[[str], Awaitable[Any]]


@dataclass(frozen=True)
class Balance:
    """What a vendor account can still spend: ``amount`` in ``currency`` (None: no limit), and ``detail``, the
    vendor's own figures it was read from."""

    amount: float | None
    currency: str
    detail: Mapping[str, Any]

    def describe(self) -> str:
        """``12.5 USD`` or ``unlimited``."""
        return "unlimited" if self.amount is None else f"{self.amount:g} {self.currency}"


class BalanceRoute(ABC):
    """How one vendor host answers its balance."""

    #: The routes it reads, in order.
    paths: ClassVar[tuple[str, ...]]

    @abstractmethod
    async def read(self, fetch: Fetch) -> Balance:
        """The balance, read with ``fetch``."""


def _amount(answer: Any, field: str, path: str) -> float:
    value = number(mapping(answer).get(field))
    if value is None:
        raise GenMediaAPIError(f"the answer of {path} holds no number {field}")
    return value


class NovitaBalance(BalanceRoute):
    """``availableBalance`` of ``GET /openapi/v1/billing/balance/detail``, in 1/10,000 USD."""

    paths = ("/openapi/v1/billing/balance/detail",)
    #: Amounts are in 1/10,000 USD.
    UNITS_PER_USD = 10_000

    async def read(self, fetch: Fetch) -> Balance:
        """The amount that can still be spent, in USD."""
        (path,) = self.paths
        answer = await fetch(path)
        amount = _amount(answer, "availableBalance", path) / self.UNITS_PER_USD
        return Balance(amount, "USD", dict(mapping(answer)))


class GptGeQuota(BalanceRoute):
    """The key's quota (``hard_limit_usd``) less what it used (``total_usage`` / 100)."""

    paths = ("/v1/dashboard/billing/subscription", "/v1/dashboard/billing/usage")
    #: The ``hard_limit_usd`` of a key whose quota is unlimited.
    UNLIMITED = 100_000_000

    async def read(self, fetch: Fetch) -> Balance:
        """What the key may still spend, in the unit the gateway names USD; None when its quota is unlimited."""
        subscription_path, usage_path = self.paths
        subscription = await fetch(subscription_path)
        quota = _amount(subscription, "hard_limit_usd", subscription_path)
        if quota >= self.UNLIMITED:
            return Balance(None, "USD", {"hard_limit_usd": quota})
        usage = await fetch(usage_path)
        used = _amount(usage, "total_usage", usage_path) / 100
        return Balance(round(quota - used, 6), "USD", {"hard_limit_usd": quota, "total_usage": used * 100})


#: The balance route of each connection type.
BALANCE_ROUTES: dict[str, BalanceRoute] = {"novita": NovitaBalance(), "gptge": GptGeQuota()}


def check_min_balance(service: str, conn_id: str, balance: Balance, min_balance: float) -> None:
    """Refuse a submit (`GenMediaBalanceError`: the operator fails without retry) while ``balance`` is below
    ``min_balance``."""
    if balance.amount is None or balance.amount >= min_balance:
        return
    raise GenMediaBalanceError(
        f"{service} balance of connection {conn_id!r} is {balance.describe()}, below its {MIN_BALANCE_FIELD} "
        f"{min_balance:g}: nothing was sent. Top up the account, or lower or clear the extra {MIN_BALANCE_FIELD} "
        f"of connection {conn_id!r} to submit anyway"
    )
