"""Prices of vendor jobs, from the connection extra ``prices``, and the estimated cost of what a job used.

The extra is one JSON object: a ``currency`` and, by API name, the API's prices, where keys that are routes (they
start with ``/``) price one endpoint of the API::

    {"currency": "USD",
     "novita": {"per_output": 0.002, "/v3/async/img2img": {"per_output": 0.0015}},
     "bailian": {"per_video_second": 0.1}}

The most specific entry prices a job, whole: the endpoint's own entry where there is one, else the API's. A job is
priced ``per_job + per_output * outputs + per_video_second * video_seconds``, from what its request asked
(`airflow_provider_genmedia.results.Usage`). An API the extra does not name, or a price per video second for a job
whose length nobody knows, gives no estimate (None) rather than a wrong one.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, ValidationError, model_validator

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.results import Usage

#: The connection extra that holds the prices.
PRICES_FIELD = "prices"
_PRICE_FIELDS = ("per_job", "per_output", "per_video_second")
#: Containers of the models below that the extra's own JSON does not have: left out of the field named in an error.
_HIDDEN_LOCATIONS = ("apis", "endpoints")


class Price(BaseModel):
    """What one job costs: a fixed ``per_job`` amount, plus ``per_output`` for each image or video asked, plus
    ``per_video_second`` for each second of video asked (all in the extra's currency; a price left out is 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_job: NonNegativeFloat | None = None
    per_output: NonNegativeFloat | None = None
    per_video_second: NonNegativeFloat | None = None

    @property
    def given(self) -> bool:
        """True when at least one of the three prices is set."""
        return any(getattr(self, name) is not None for name in _PRICE_FIELDS)

    def cost(self, usage: Usage) -> float | None:
        """The cost of a job that used ``usage``; None when it is priced per video second and its length is
        unknown."""
        if self.per_video_second and usage.video_seconds is None:
            return None
        total = (self.per_job or 0.0) + (self.per_output or 0.0) * usage.outputs
        total += (self.per_video_second or 0.0) * (usage.video_seconds or 0.0)
        return round(total, 9)


class ApiPrices(Price):
    """The prices of one API: its own, for every endpoint without an entry, and ``endpoints`` by route."""

    endpoints: dict[str, Price] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _routes_are_endpoints(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        prices: dict[str, Any] = {}
        endpoints: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(key, str) and key.startswith("/"):
                endpoints[key] = value
            elif key in _PRICE_FIELDS:
                prices[key] = value
            else:
                raise ValueError(
                    f"unknown key {key!r}: expected {', '.join(_PRICE_FIELDS)} or an endpoint route starting "
                    "with / (e.g. /v3/async/img2img)"
                )
        return {**prices, "endpoints": endpoints}

    def price(self, path: str | None) -> Price | None:
        """The entry that prices a job sent to ``path``: the endpoint's, else the API's own (None: neither)."""
        if path is not None and path.split("?")[0] in self.endpoints:
            return self.endpoints[path.split("?")[0]]
        return self if self.given else None


class Prices(BaseModel):
    """The connection extra ``prices``: a ``currency`` and the prices of each API by its name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(min_length=1, max_length=16)
    apis: dict[str, ApiPrices] = Field(default_factory=dict)

    def estimate(self, api: str, path: str | None, usage: Usage) -> Usage:
        """``usage`` with its ``estimated_cost`` and ``currency`` where these prices cover a job of ``api`` sent
        to ``path`` (None: the route is not known, the API's own prices apply)."""
        entry = self.apis.get(api)
        price = entry.price(path) if entry is not None else None
        cost = price.cost(usage) if price is not None else None
        if cost is None:
            return usage
        return usage.model_copy(update={"estimated_cost": cost, "currency": self.currency})


def parse_prices(value: Any, api_names: tuple[str, ...]) -> Prices | None:
    """The connection extra ``prices`` (a JSON object, or its text as the connection form stores it) for the APIs
    ``api_names``; None when it is empty. A bad value is a `GenMediaValidationError` naming the field, e.g.
    ``prices.novita./v3/async/img2img.per_output``."""
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as bad_json:
            raise GenMediaValidationError(PRICES_FIELD, f"is not valid JSON: {bad_json}") from None
    if not isinstance(value, dict):
        raise GenMediaValidationError(PRICES_FIELD, f"must be a JSON object, not {type(value).__name__}")
    unknown = sorted(str(key) for key in value if key != "currency" and key not in api_names)
    if unknown:
        raise GenMediaValidationError(
            f"{PRICES_FIELD}.{unknown[0]}", f"is not an API of this connection; expected one of {api_names}"
        )
    data = {"currency": value.get("currency"), "apis": {key: item for key, item in value.items() if key != "currency"}}
    if data["currency"] is None:
        data.pop("currency")
    try:
        return Prices.model_validate(data)
    except ValidationError as exc:
        problems = []
        for problem in exc.errors(include_url=False, include_input=False):
            location = [str(part) for part in problem["loc"] if part not in _HIDDEN_LOCATIONS]
            problems.append((".".join([PRICES_FIELD, *location]), problem["msg"].removeprefix("Value error, ")))
        field = problems[0][0]
        text = "; ".join(f"{location}: {message}" for location, message in problems)
        raise GenMediaValidationError(field, text.removeprefix(f"{field}: ")) from None


def usage_summary(usage: Usage | None) -> str:
    """One line about a job's usage and cost, for the task log: ``2 outputs, 256x192; estimated cost 0.003 USD``."""
    if usage is None:
        return "usage unknown"
    parts = [f"{usage.outputs} output{'' if usage.outputs == 1 else 's'}"]
    if usage.video_seconds is not None:
        parts.append(f"{usage.video_seconds:g} s of video")
    if usage.resolution:
        parts.append(usage.resolution)
    if usage.reported:
        parts.append("vendor reported " + ", ".join(f"{key}={value}" for key, value in usage.reported.items()))
    if usage.estimated_cost is None:
        cost = "no estimated cost (no price for it in the connection extra prices)"
    else:
        cost = f"estimated cost {usage.estimated_cost:g} {usage.currency}"
    return f"{', '.join(parts)}; {cost}"
