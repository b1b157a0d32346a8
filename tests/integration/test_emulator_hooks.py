"""The project's hooks (NovitaHook, GptGeHook) against the emulator: round trips, errors, retries, verdicts."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
import requests
from PIL import Image

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.exceptions import (
    GenMediaAuthError,
    GenMediaNotFoundError,
    GenMediaServerError,
    GenMediaValidationError,
)
from airflow_provider_genmedia.hooks.genmedia import GenMediaHook, GptGeHook, NovitaHook, hook_for
from airflow_provider_genmedia.results import GenerationResult, TaskStatus
from tests.emulator_fixtures import SAMPLE_SUBMITS, TEST_CONFIG, EmulatorControl, sample_body

POLL_INTERVAL = 0.05
WAIT_LIMIT = 15.0
SUBMIT_IDS = [path.removeprefix("/").replace("/", "-") for _, path, _ in SAMPLE_SUBMITS]


def wait(hook: GenMediaHook, api: str, task_id: str) -> tuple[GenerationResult, int]:
    """Poll with the sync hook until terminal; return the result and the number of polls."""
    deadline = time.monotonic() + WAIT_LIMIT
    polls = 0
    while time.monotonic() < deadline:
        result = hook.get_result(api, task_id)
        polls += 1
        if result.status.is_terminal:
            return result, polls
        time.sleep(POLL_INTERVAL)
    raise AssertionError(f"{api} task {task_id} did not finish")


@pytest.mark.parametrize(("api", "path", "body"), SAMPLE_SUBMITS, ids=SUBMIT_IDS)
def test_sync_hooks_round_trip_every_route(
    emulator_connections: EmulatorControl, api: str, path: str, body: dict
) -> None:
    hook = hook_for(get_api(api))
    task_id = hook.submit(get_api(api).prepare(body, path))
    result, polls = wait(hook, api, task_id)

    assert result.status is TaskStatus.SUCCEEDED
    assert result.task_id == task_id
    for output in result.outputs:
        content = requests.get(output.url, timeout=10).content
        if output.kind == "image":
            assert Image.open(io.BytesIO(content)).size == (body["request"]["width"], body["request"]["height"])
        else:
            assert content[4:8] == b"ftyp"
    stats = emulator_connections.stats()
    assert stats["submits"][api] == 1
    assert stats["tasks"][task_id]["polls"] == polls
    assert stats["tasks"][task_id]["downloads"] == len(result.outputs)


@pytest.mark.parametrize(("api", "path", "body"), SAMPLE_SUBMITS, ids=SUBMIT_IDS)
async def test_async_hooks_poll_every_route(
    emulator_connections: EmulatorControl, api: str, path: str, body: dict
) -> None:
    hook = hook_for(get_api(api))
    task_id = await asyncio.to_thread(hook.submit, get_api(api).prepare(body, path))
    async with hook:
        result = await hook.aget_result(api, task_id)
        first = result.status
        while not result.status.is_terminal:
            await asyncio.sleep(POLL_INTERVAL)
            result = await hook.aget_result(api, task_id)

    assert first in (TaskStatus.QUEUED, TaskStatus.RUNNING)
    assert result.status is TaskStatus.SUCCEEDED
    assert result.outputs and all(output.url.startswith(emulator_connections.url) for output in result.outputs)


def test_a_wrong_key_is_an_auth_error(emulator_connections: EmulatorControl, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "gptge", "host": emulator_connections.url, "password": "not-the-key"}
    monkeypatch.setenv("AIRFLOW_CONN_GPTGE_WRONG", json.dumps(connection))
    hook = GptGeHook("gptge_wrong")
    api, body = sample_body("/task/jimeng/text2video")

    with pytest.raises(GenMediaAuthError) as error:
        hook.submit(get_api(api).prepare(body, "/task/jimeng/text2video"))
    assert error.value.status_code == 401
    assert "not-the-key" not in str(error.value)
    ok, message = hook.test_connection()
    assert not ok and message.startswith(f"gpt.ge at {emulator_connections.url} refused the API key: HTTP 401")
    assert "jimeng" not in message.lower() and "not-the-key" not in message
    assert emulator_connections.stats()["submits"]["jimeng"] == 0


def test_the_hooks_accept_the_emulator_key(emulator_connections: EmulatorControl) -> None:
    assert NovitaHook().test_connection()[0] is True
    assert GptGeHook().test_connection()[0] is True


def test_an_invalid_body_is_refused_before_any_request(emulator_connections: EmulatorControl) -> None:
    api, body = sample_body("/task/bailian/text2video")
    body["parameters"]["duration"] = 7

    with pytest.raises(GenMediaValidationError, match="duration"):
        GptGeHook().submit(get_api(api).prepare(body, "/task/bailian/text2video"))
    assert emulator_connections.stats()["submits"]["bailian"] == 0


def test_a_rate_limited_submit_is_retried_and_paid_once(emulator_connections: EmulatorControl) -> None:
    emulator_connections.configure(rate_limit={"next": 2})
    api, body = sample_body("/v3/async/img2img")
    task_id = NovitaHook().submit(get_api(api).prepare(body, "/v3/async/img2img"))

    stats = emulator_connections.stats()
    assert list(stats["tasks"]) == [task_id]
    assert stats["submits"]["novita"] == 1
    assert stats["faults"]["rate_limit"] == 2


def test_a_submit_answered_500_is_not_retried(emulator_connections: EmulatorControl) -> None:
    emulator_connections.configure(server_error={"next": 1}, server_error_statuses=[500])
    api, body = sample_body("/avatar/generation")

    with pytest.raises(GenMediaServerError):
        GptGeHook().submit(get_api(api).prepare(body, "/avatar/generation"))
    assert emulator_connections.stats()["faults"]["server_error"] == 1


def test_polls_ride_out_proxy_errors(emulator_connections: EmulatorControl) -> None:
    hook = GptGeHook()
    api, body = sample_body("/task/bailian/image2video")
    task_id = hook.submit(get_api(api).prepare(body, "/task/bailian/image2video"))
    emulator_connections.configure(server_error={"next": 2}, server_error_statuses=[502, 503])

    result, polls = wait(hook, api, task_id)

    assert result.status is TaskStatus.SUCCEEDED
    stats = emulator_connections.stats()
    assert stats["faults"]["server_error"] == 2
    assert stats["tasks"][task_id]["polls"] == polls


@pytest.mark.parametrize("path", ["/v3/async/txt2img", "/task/jimeng/text2video", "/task/bailian/text2video"])
def test_a_failed_task_is_a_failed_result(emulator_connections: EmulatorControl, path: str) -> None:
    api, body = sample_body(path, "fail")
    hook = hook_for(get_api(api))
    result, _ = wait(hook, api, hook.submit(get_api(api).prepare(body, path)))

    assert result.status is TaskStatus.FAILED
    assert "emulated failure" in (result.reason or "")


@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        ("/task/jimeng/image2video", TaskStatus.EXPIRED),
        ("/task/bailian/image2video", TaskStatus.EXPIRED),
        ("/v3/async/txt2img", GenMediaNotFoundError),
        ("/avatar/generation", GenMediaNotFoundError),
    ],
)
def test_an_expired_task(emulator_connections: EmulatorControl, path: str, outcome: object) -> None:
    api, body = sample_body(path, "expire")
    hook = hook_for(get_api(api))
    task_id = hook.submit(get_api(api).prepare(body, path))
    # The emulator's clock set past every test task's end, instead of waiting for it.
    emulator_connections.configure(clock_offset=TEST_CONFIG.video_seconds + 0.05)

    if outcome is GenMediaNotFoundError:
        with pytest.raises(GenMediaNotFoundError):
            hook.get_result(api, task_id)
    else:
        assert hook.get_result(api, task_id).status is outcome


def test_nsfw_verdicts_reach_the_result(emulator_connections: EmulatorControl) -> None:
    api, body = sample_body("/v3/async/img2img", "nsfw portrait")
    body["extra"]["enable_nsfw_detection"] = True
    hook = NovitaHook()
    result, _ = wait(hook, api, hook.submit(get_api(api).prepare(body, "/v3/async/img2img")))

    assert [output.nsfw.confidence for output in result.outputs if output.nsfw] == [97.5, 97.5]
    assert result.seed == 42
