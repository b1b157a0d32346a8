"""Waits on one connection share one session, one pool and one poll gate; against a real local aiohttp server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from airflow_provider_genmedia.exceptions import GenMediaRateLimitError, GenMediaValidationError
from airflow_provider_genmedia.hooks.connection_settings import DEFAULT_MAX_OUTAGE
from airflow_provider_genmedia.hooks.genmedia import GptGeHook, NovitaHook
from airflow_provider_genmedia.hooks.poll_gate import MAX_PAUSE, RATE_LIMIT_PAUSE, PollGate
from airflow_provider_genmedia.hooks.sessions import POOL_SIZE, open_sessions
from airflow_provider_genmedia.results import TaskProgress, TaskStatus
from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger

KEY = "sk_test_sessions_0123456789"


def running(task_id: str) -> dict[str, Any]:
    return {"task": {"task_id": task_id, "status": "TASK_STATUS_PROCESSING", "progress_percent": 40, "eta": 3}}


@dataclass
class Vendor:
    """A Novita task-result route that records when each poll came and over which TCP connection."""

    server: TestServer
    answer: Callable[[int], web.Response] = field(default=lambda _: web.json_response(running("t")))
    polls: list[tuple[float, object]] = field(default_factory=list)

    async def task_result(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.polls.append((time.monotonic(), peer))
        return self.answer(len(self.polls))

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def vendor(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Vendor]:
    app = web.Application()
    vendor = Vendor(TestServer(app, host="127.0.0.1"))
    app.router.add_get("/v3/async/task-result", vendor.task_result)
    await vendor.server.start_server()
    connect(monkeypatch, vendor.url)
    yield vendor
    await vendor.server.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Wait, letting the other tasks run, until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def connect(monkeypatch: pytest.MonkeyPatch, url: str, **extra: Any) -> None:
    connection = {"conn_type": "novita", "host": url, "password": KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_NOVITA_DEFAULT", json.dumps(connection))


async def poll_times(count: int) -> None:
    async with NovitaHook() as hook:
        for _ in range(count):
            assert await hook.apoll("novita", "t") == TaskProgress(TaskStatus.RUNNING, 40.0, 3.0)
            await asyncio.sleep(0.01)


async def test_waits_on_one_connection_share_one_session_and_its_pool(vendor: Vendor) -> None:
    waits = [asyncio.create_task(poll_times(3)) for _ in range(300)]
    await until(lambda: len(vendor.polls) >= 1, "the first poll")
    assert open_sessions() == 1

    await asyncio.gather(*waits)

    connections = {peer for _, peer in vendor.polls}
    assert len(vendor.polls) == 900
    assert len(connections) <= POOL_SIZE
    assert open_sessions() == 0


async def test_a_cancelled_trigger_gives_back_its_share_of_the_session(vendor: Vendor) -> None:
    triggers = [GenMediaTaskTrigger("novita", f"t{index}", None, poll_interval=0.05) for index in range(3)]
    waits = [asyncio.create_task(anext(trigger.run())) for trigger in triggers]
    await until(lambda: len(vendor.polls) >= 6, "two polls of each trigger")
    assert open_sessions() == 1

    waits[0].cancel()
    await until(waits[0].done, "the cancelled trigger to end")
    polled = len(vendor.polls)
    await until(lambda: len(vendor.polls) >= polled + 2, "two more polls of the triggers left")
    assert open_sessions() == 1  # the other two still poll over it
    for wait in waits[1:]:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)

    assert open_sessions() == 0


async def test_max_polls_per_second_paces_every_wait_of_the_connection(
    vendor: Vendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, vendor.url, max_polls_per_second=100)

    await asyncio.gather(*(poll_times(1) for _ in range(30)))

    times = sorted(moment for moment, _ in vendor.polls)
    assert len(times) == 30
    assert times[-1] - times[0] >= 29 / 100 * 0.9  # unpaced, 30 polls at once take a few milliseconds


async def test_a_429_with_retry_after_pauses_every_wait_of_the_connection(vendor: Vendor) -> None:
    vendor.answer = lambda poll: (
        web.json_response({}, status=429, headers={"retry-after-ms": "300"})
        if poll == 1
        else web.json_response(running("t"))
    )
    async with NovitaHook() as first:
        with pytest.raises(GenMediaRateLimitError):
            await first.apoll("novita", "t")
        limited_at = vendor.polls[0][0]

        await asyncio.gather(*(poll_times(1) for _ in range(20)))

    later = [moment for moment, _ in vendor.polls[1:]]
    assert len(later) == 20
    assert min(later) - limited_at >= 0.29


async def test_a_vendor_rate_limit_code_in_a_200_answer_pauses_the_connection_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Jimeng says "limit reached" with ``code`` 50429 in an HTTP 200: the gate pauses as for a 429."""
    limited = {"code": 50429, "data": None, "message": "Request Has Reached API Limit", "status": 50429}
    running = {"code": 10000, "data": {"status": "generating"}, "message": "Success", "status": 10000}
    polls: list[float] = []

    async def task(request: web.Request) -> web.Response:
        polls.append(time.monotonic())
        return web.json_response(limited if len(polls) == 1 else running)

    app = web.Application()
    app.router.add_get("/task/{task_id}", task)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    connection = {"conn_type": "gptge", "host": str(server.make_url("")).rstrip("/"), "password": KEY}
    monkeypatch.setenv("AIRFLOW_CONN_GPTGE_DEFAULT", json.dumps(connection))
    try:
        async with GptGeHook() as hook:
            with pytest.raises(GenMediaRateLimitError):
                await hook.apoll("jimeng", "t")
            assert await hook.apoll("jimeng", "t") == TaskProgress(TaskStatus.RUNNING)
    finally:
        await server.close()

    assert len(polls) == 2
    assert polls[1] - polls[0] >= RATE_LIMIT_PAUSE * 0.95  # no Retry-After: the first doubling pause


def test_a_429_without_retry_after_pauses_for_a_doubling_time_until_a_poll_passes() -> None:
    now = [100.0]
    gate = PollGate(None, clock=lambda: now[0])

    assert [gate.pause(None) for _ in range(3)] == [RATE_LIMIT_PAUSE, 2 * RATE_LIMIT_PAUSE, 4 * RATE_LIMIT_PAUSE]
    assert gate.paused_until == 100.0 + 4 * RATE_LIMIT_PAUSE
    gate.passed()
    assert gate.pause(None) == RATE_LIMIT_PAUSE
    assert gate.pause(10_000) == MAX_PAUSE
    assert gate.paused_until == 100.0 + MAX_PAUSE


def test_max_polls_per_second_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "http://127.0.0.1:1", max_polls_per_second=0)
    with pytest.raises(GenMediaValidationError) as raised:
        NovitaHook().settings()
    assert raised.value.field == "max_polls_per_second"


@pytest.mark.parametrize(("extra", "seconds"), [({}, DEFAULT_MAX_OUTAGE), ({"max_outage_seconds": "20"}, 20.0)])
def test_max_outage_seconds_is_read_from_the_extras(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], seconds: float
) -> None:
    connect(monkeypatch, "http://127.0.0.1:1", **extra)

    assert NovitaHook().settings().max_outage_seconds == seconds


@pytest.mark.parametrize("value", [-1, "soon", float("nan")])
def test_max_outage_seconds_must_be_a_number_of_seconds(monkeypatch: pytest.MonkeyPatch, value: object) -> None:
    connect(monkeypatch, "http://127.0.0.1:1", max_outage_seconds=value)
    with pytest.raises(GenMediaValidationError) as raised:
        NovitaHook().settings()
    assert raised.value.field == "max_outage_seconds"
