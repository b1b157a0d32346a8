"""What a hook reads from its Airflow connection: base URL, key, timeout, retries, poll rate, budgets, prices."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import mask_secret

from airflow_provider_genmedia.apis import API_NAMES
from airflow_provider_genmedia.budgets import DailyBudget
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.pricing import PRICES_FIELD, Prices, parse_prices

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 4
#: How long a wait rides out failed polls in a row (a vendor or gateway outage) before it ends in ``error``.
DEFAULT_MAX_OUTAGE = 600.0


@dataclass(frozen=True)
class ConnectionSettings:
    """What a hook reads from its Airflow connection. ``repr`` leaves the key out."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float
    max_retries: int
    max_polls_per_second: float | None = None
    budget: DailyBudget = field(default_factory=DailyBudget)
    #: The extra ``prices``: what a job costs, for the estimated cost of each result (None: no estimate).
    prices: Prices | None = None
    #: The extra ``min_balance``: no submit while the vendor's balance is below it (None: not checked).
    min_balance: float | None = None
    max_outage_seconds: float = DEFAULT_MAX_OUTAGE

    @classmethod
    def read(
        cls,
        conn: Any,
        extras: Mapping[str, Any],
        default_base_url: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        apis: tuple[str, ...] = API_NAMES,
    ) -> ConnectionSettings:
        """The settings of an Airflow connection and its extras; ``timeout``/``max_retries`` given override them.
        The key is masked in every log from here on; a missing key or a bad extra is an error naming the field
        (``prices`` may price only the ``apis`` that the connection serves)."""
        host = base_url(conn, default_base_url)
        if not conn.password:
            raise GenMediaValidationError("password", f"connection {conn.conn_id!r} has no API key")
        mask_secret(conn.password)
        retries = max_retries if max_retries is not None else extras.get("max_retries")
        outage = _extra_number(extras, "max_outage_seconds")
        return cls(
            base_url=host,
            api_key=conn.password,
            timeout=float(timeout or extras.get("timeout") or DEFAULT_TIMEOUT),
            max_retries=int(retries if retries not in (None, "") else DEFAULT_MAX_RETRIES),
            max_polls_per_second=_extra_number(extras, "max_polls_per_second", positive=True),
            budget=DailyBudget(
                max_jobs=_extra_count(extras, "max_jobs_per_day"),
                max_outputs=_extra_count(extras, "max_outputs_per_day"),
            ),
            prices=parse_prices(extras.get(PRICES_FIELD), apis),
            min_balance=_extra_number(extras, "min_balance"),
            max_outage_seconds=DEFAULT_MAX_OUTAGE if outage is None else outage,
        )


def base_url(conn: Any, default_base_url: str) -> str:
    """The base URL of an Airflow connection: its host (``https://`` when it names no scheme) with its port, or
    ``default_base_url`` when it has no host."""
    host = (conn.host or "").strip() or default_base_url
    if "://" not in host:
        host = f"https://{host}"
    parts = urlsplit(host)
    if conn.port and parts.port is None:
        host = parts._replace(netloc=f"{parts.netloc}:{conn.port}").geturl()
    return host.rstrip("/")


def _extra_number(
    extras: Mapping[str, Any], field: str, *, whole: bool = False, positive: bool = False
) -> float | None:
    """The extra ``field`` as a number of at least 0 (above 0 when ``positive``; a whole one when ``whole``), or None
    when it is empty; any other value is an error naming the field."""
    value = extras.get(field)
    if value in (None, ""):
        return None
    try:
        number: float = int(str(value).strip()) if whole else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if positive:
        valid, wanted = number > 0, "a positive number"
    else:
        valid, wanted = 0 <= number < math.inf, "a whole number of at least 0" if whole else "a number of 0 or more"
    if not valid:
        raise GenMediaValidationError(field, f"must be {wanted}, not {value!r}")
    return number


def _extra_count(extras: Mapping[str, Any], field: str) -> int | None:
    """The extra ``field`` as a whole number of at least 0 (0 allows nothing), or None when it is empty."""
    number = _extra_number(extras, field, whole=True)
    return None if number is None else int(number)
