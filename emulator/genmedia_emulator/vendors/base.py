"""What every emulated vendor shares: the error envelopes of the two hosts, the per-poll view, the renderer."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from genmedia_emulator.config import EmulatorConfig
from genmedia_emulator.schemas.base import BodyError, VendorSchema, check
from genmedia_emulator.state import Account, Phase, Plan, Task

SeedPicker = Callable[[Any], int]
HOUR = 3600


@dataclass(frozen=True)
class View:
    """A task as one poll sees it: its state now, its signed output URLs and their lifetime, the settings."""

    task: Task
    now: float
    status: Phase
    urls: dict[str, str]
    ttl: int
    config: EmulatorConfig


def texts(value: Any, keys: tuple[str, ...]) -> Iterator[str]:
    """Every string under one of ``keys``, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, str):
                yield item
            else:
                yield from texts(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item, keys)


def request_id() -> str:
    """A request id in UUID form."""
    return str(uuid.uuid4())


class Gateway(ABC):
    """One vendor host: its error envelope, for failures before a request reaches an API, and its balance routes."""

    #: The host's name in the config's ``balance`` and the stats.
    host: ClassVar[str]
    #: The `EmulatorConfig` switch that puts ``Retry-After`` on this host's injected 429 answers.
    retry_after_setting: ClassVar[str]
    #: The routes that answer the account's balance.
    balance_paths: ClassVar[tuple[str, ...]]

    @abstractmethod
    def error(self, status: int, reason: str, message: str) -> web.Response:
        """An error answer; ``reason`` is an upper-case code such as ``INVALID_API_KEY``."""

    @abstractmethod
    def balance(self, path: str, account: Account) -> dict[str, Any]:
        """The answer of the balance route ``path`` for ``account``."""


class NovitaGateway(Gateway):
    """Novita's unified body ``{"code": <http status>, "reason", "message", "metadata"}``.

    https://novita.ai/docs/guides/error; no rate-limit header is documented
    (https://novita.ai/docs/guides/model-apis-rate-limits), so ``Retry-After`` is off by default.
    """

    host = "novita"
    retry_after_setting = "novita_retry_after"
    #: https://novita.ai/docs/api-reference/basic-get-user-balance
    balance_paths = ("/openapi/v1/billing/balance/detail",)

    def error(self, status: int, reason: str, message: str) -> web.Response:
        """An error in Novita's envelope."""
        body = {"code": status, "reason": reason, "message": message, "metadata": {}}
        return web.json_response(body, status=status)

    def balance(self, path: str, account: Account) -> dict[str, Any]:
        """Strings in 1/10,000 USD: no credit limit, so what is available is the top-up left, and a balance spent
        below zero is owed (``outstandingInvoices``)."""

        def units(usd: float) -> str:
            return str(round(usd * 10_000))

        left = account.balance
        return {
            "availableBalance": units(left),
            "cashBalance": units(max(left, 0.0)),
            "creditLimit": "0",
            "pendingCharges": "0",
            "outstandingInvoices": units(max(-left, 0.0)),
        }


class GptGeGateway(Gateway):
    """gpt.ge's gateway error body ``{"error": {"message", "type", "code"}}``: gpt.ge documents none, so this is the
    OpenAI-style body of the one-api/new-api gateway it appears to run."""

    host = "gptge"
    retry_after_setting = "gptge_retry_after"
    #: https://gpt.morphogen.top/en/query-token-quota.html and https://gpt.morphogen.top/en/query-token-usage.html
    balance_paths = ("/v1/dashboard/billing/subscription", "/v1/dashboard/billing/usage")

    def error(self, status: int, reason: str, message: str) -> web.Response:
        """An error in the gateway's envelope."""
        body = {"error": {"message": message, "type": "new_api_error", "code": reason.lower()}}
        return web.json_response(body, status=status)

    def balance(self, path: str, account: Account) -> dict[str, Any]:
        """The key's quota (the balance as last set) in ``*_limit_usd``, or what it used since, ``total_usage``, in
        hundredths."""
        if path.endswith("/usage"):
            return {"object": "list", "total_usage": round(account.spent * 100, 6)}
        quota = account.quota
        return {
            "object": "billing_subscription",
            "has_payment_method": True,
            "soft_limit_usd": quota,
            "hard_limit_usd": quota,
            "system_hard_limit_usd": quota,
            "access_until": 0,
        }


NOVITA = NovitaGateway()
GPTGE = GptGeGateway()


class Renderer(ABC):
    """One API: its routes and their schemas, task ids, how a submit becomes a `Plan`, its answer bodies."""

    api: ClassVar[str]
    gateway: ClassVar[Gateway]
    #: The aiohttp route patterns of the submit routes.
    submit_routes: ClassVar[tuple[str, ...]]
    #: Lifetime of output links, counted from the task's end.
    url_ttl: ClassVar[int] = HOUR

    @abstractmethod
    def schema(self, path: str) -> type[VendorSchema] | None:
        """The schema of ``path``'s body (None: any JSON object); `KeyError` when the vendor has no such API."""

    def check(self, path: str, body: Any) -> dict[str, Any]:
        """The body as sent when the vendor would accept it; `BodyError` otherwise."""
        schema = self.schema(path)
        if schema is None:
            if not isinstance(body, dict):
                raise BodyError("body: must be a JSON object")
            return body
        return check(schema, body)

    def new_task_id(self) -> str:
        """A task id in the vendor's style."""
        return str(uuid.uuid4())

    def invalid(self, error: BodyError) -> web.Response:
        """The answer to a body that fails validation."""
        return self.gateway.error(400, error.reason, str(error))

    def not_found(self, task_id: str) -> web.Response:
        """The answer for a task the vendor does not know (any more)."""
        return self.gateway.error(404, "TASK_NOT_FOUND", f"task {task_id} not found")

    @abstractmethod
    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """Read an accepted submit body."""

    @abstractmethod
    def submitted(self, task: Task, config: EmulatorConfig) -> dict[str, Any]:
        """The body of the submit answer."""

    @abstractmethod
    def result(self, view: View) -> web.Response:
        """The answer to a poll."""
