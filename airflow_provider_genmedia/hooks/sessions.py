"""One aiohttp session per event loop and connection, shared by every wait of the process.

A triggerer runs all its triggers in one event loop: thousands of waits for one connection share one
session (a bounded pool of keep-alive connections), the connection's settings, read once, and one `PollGate`
that paces their polls and pauses all of them after a 429. The session closes when its last user is done.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from airflow.providers.common.compat.sdk import mask_secret

from airflow_provider_genmedia.apis import API_NAMES
from airflow_provider_genmedia.budgets import DailyBudget
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.pricing import PRICES_FIELD, Prices, parse_prices

#: Connections one shared session keeps open to a vendor at most (aiohttp's default), reused with keep-alive.
POOL_SIZE = 100
KEEPALIVE_SECONDS = 30.0
CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 4
#: How long a wait rides out failed polls in a row (a vendor or gateway outage) before it ends in ``error``.
DEFAULT_MAX_OUTAGE = 600.0
#: The first pause of a connection after a 429 without ``Retry-After``; doubled by each further one.
RATE_LIMIT_PAUSE = 1.0
#: No pause of a connection, asked or doubled, lasts longer than this.
MAX_PAUSE = 120.0
#: After a pause, each waiting poll resumes at a random point of this fraction of the pause, not all at once.
RESUME_SPREAD = 0.2


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
        host = (conn.host or "").strip() or default_base_url
        if "://" not in host:
            host = f"https://{host}"
        parts = urlsplit(host)
        if conn.port and parts.port is None:
            host = parts._replace(netloc=f"{parts.netloc}:{conn.port}").geturl()
        if not conn.password:
            raise GenMediaValidationError("password", f"connection {conn.conn_id!r} has no API key")
        mask_secret(conn.password)
        retries = max_retries if max_retries is not None else extras.get("max_retries")
        outage = _non_negative_or_none("max_outage_seconds", extras.get("max_outage_seconds"))
        return cls(
            base_url=host.rstrip("/"),
            api_key=conn.password,
            timeout=float(timeout or extras.get("timeout") or DEFAULT_TIMEOUT),
            max_retries=int(retries if retries not in (None, "") else DEFAULT_MAX_RETRIES),
            max_polls_per_second=_positive_or_none("max_polls_per_second", extras.get("max_polls_per_second")),
            budget=DailyBudget(
                max_jobs=_count_or_none("max_jobs_per_day", extras.get("max_jobs_per_day")),
                max_outputs=_count_or_none("max_outputs_per_day", extras.get("max_outputs_per_day")),
            ),
            prices=parse_prices(extras.get(PRICES_FIELD), apis),
            min_balance=_non_negative_or_none("min_balance", extras.get("min_balance")),
            max_outage_seconds=DEFAULT_MAX_OUTAGE if outage is None else outage,
        )


def _positive_or_none(field: str, value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if number <= 0:
        raise GenMediaValidationError(field, f"must be a positive number, not {value!r}")
    return number


def _count_or_none(field: str, value: Any) -> int | None:
    """A whole number of at least 0 (0 allows nothing), or None when the extra is empty."""
    if value in (None, ""):
        return None
    try:
        count = int(str(value).strip())
    except ValueError:
        count = -1
    if count < 0:
        raise GenMediaValidationError(field, f"must be a whole number of at least 0, not {value!r}")
    return count


def _non_negative_or_none(field: str, value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise GenMediaValidationError(field, f"must be a number of 0 or more, not {value!r}")
    return number


class PollGate:
    """Paces the polls of one connection: at most ``per_second`` of them (None: no limit), none while paused."""

    def __init__(self, per_second: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._spacing = 1.0 / per_second if per_second else 0.0
        self._clock = clock
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._spread = 0.0
        self._next_pause = RATE_LIMIT_PAUSE

    @property
    def paused_until(self) -> float:
        """The clock reading at which the current pause ends (in the past when not paused)."""
        return self._paused_until

    async def wait(self) -> None:
        """Return when this poll may be sent: after any pause, in its turn under the rate limit."""
        while True:
            now = self._clock()
            if self._paused_until > now:
                await asyncio.sleep(self._paused_until - now + random.uniform(0, self._spread))
                continue
            if not self._spacing:
                return
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._spacing
            if slot > now:
                await asyncio.sleep(slot - now)
            if self._paused_until <= self._clock():
                return

    def pause(self, retry_after: float | None) -> float:
        """Hold every poll of the connection after a 429: ``retry_after`` seconds, or a doubling pause."""
        if retry_after is None:
            seconds = self._next_pause
            self._next_pause = min(self._next_pause * 2, MAX_PAUSE)
        else:
            seconds = retry_after
        seconds = min(max(seconds, 0.0), MAX_PAUSE)
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self._spread = seconds * RESUME_SPREAD
        return seconds

    def passed(self) -> None:
        """A poll was answered: the next 429 without ``Retry-After`` starts from the first pause again."""
        self._next_pause = RATE_LIMIT_PAUSE


@dataclass
class SharedSession:
    """The session, request headers and poll gate that every wait on one connection shares in one event loop."""

    settings: ConnectionSettings
    headers: dict[str, str]
    session: aiohttp.ClientSession
    gate: PollGate
    users: int = 0
    closing: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, settings: ConnectionSettings, headers: dict[str, str]) -> SharedSession:
        """A session with a bounded keep-alive pool and the connection's request timeout."""
        connector = aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=KEEPALIVE_SECONDS)
        timeout = aiohttp.ClientTimeout(total=settings.timeout, connect=CONNECT_TIMEOUT)
        session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return cls(settings, headers, session, PollGate(settings.max_polls_per_second))


_OPEN: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, asyncio.Task[SharedSession]]]
_OPEN = weakref.WeakKeyDictionary()


def _forget_failed(sessions: dict[Hashable, asyncio.Task[SharedSession]], key: Hashable) -> Callable[..., None]:
    def forget(task: asyncio.Task[SharedSession]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if failed and sessions.get(key) is task:
            del sessions[key]

    return forget


async def acquire(key: Hashable, opener: Callable[[], Awaitable[SharedSession]]) -> SharedSession:
    """The shared session of ``key`` in this event loop, opened by ``opener`` for the first user only."""
    loop = asyncio.get_running_loop()
    sessions = _OPEN.setdefault(loop, {})
    while True:
        opening = sessions.get(key)
        if opening is None:

            async def open_session() -> SharedSession:
                return await opener()

            # A task of its own, so that a waiter cancelled while the connection is read cancels only itself.
            opening = loop.create_task(open_session())
            opening.add_done_callback(_forget_failed(sessions, key))
            sessions[key] = opening
        shared = await asyncio.shield(opening)
        if not shared.closing:
            shared.users += 1
            return shared


def _opened(opening: asyncio.Task[SharedSession] | None) -> SharedSession | None:
    if opening is None or not opening.done() or opening.cancelled() or opening.exception() is not None:
        return None
    return opening.result()


async def release(key: Hashable, shared: SharedSession) -> None:
    """Give back one use of ``shared``; the last user closes it."""
    shared.users -= 1
    if shared.users > 0 or shared.closing:
        return
    shared.closing = True
    sessions = _OPEN.get(asyncio.get_running_loop(), {})
    if _opened(sessions.get(key)) is shared:
        del sessions[key]
    await shared.session.close()


def open_sessions() -> int:
    """How many shared sessions are open in the running event loop."""
    return len(_OPEN.get(asyncio.get_running_loop(), {}))
