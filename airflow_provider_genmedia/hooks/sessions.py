"""One aiohttp session per event loop and connection, shared by every wait of the process.

A triggerer runs all its triggers in one event loop: thousands of waits for one connection share one
session (a bounded pool of keep-alive connections), the connection's settings
(`airflow_provider_genmedia.hooks.connection_settings`), read once, and one
`airflow_provider_genmedia.hooks.poll_gate.PollGate` that paces their polls and pauses all of them after a 429.
The session closes when its last user is done.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

import aiohttp

from airflow_provider_genmedia.hooks.connection_settings import ConnectionSettings
from airflow_provider_genmedia.hooks.poll_gate import PollGate

#: Connections one shared session keeps open to a vendor at most (aiohttp's default), reused with keep-alive.
POOL_SIZE = 100
KEEPALIVE_SECONDS = 30.0
CONNECT_TIMEOUT = 10.0


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
