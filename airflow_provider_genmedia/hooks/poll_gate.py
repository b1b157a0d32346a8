"""The poll gate of one connection: paces the polls of every wait on it and pauses them all after a 429."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

#: The first pause of a connection after a 429 without ``Retry-After``; doubled by each further one.
RATE_LIMIT_PAUSE = 1.0
#: No pause of a connection, asked or doubled, lasts longer than this.
MAX_PAUSE = 120.0
#: After a pause, each waiting poll resumes at a random point of this fraction of the pause, not all at once.
RESUME_SPREAD = 0.2


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
