"""Our own clients (the hooks and the ``apis/`` parsers behind them) against every vendor variant the emulator
serves, over real HTTP: Novita's flat and legacy submit answers, ``image_url_ttl`` as string or integer, the
flat and wrapped avatar result, 429 with and without ``Retry-After``, and links signed once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.hooks.genmedia import GenMediaHook, GptGeHook, NovitaHook, hook_for
from airflow_provider_genmedia.results import GenerationResult, TaskStatus
from tests.emulator_fixtures import EmulatorControl, sample_body

WAIT_LIMIT = 15.0


def finish(hook: GenMediaHook, api: str, task_id: str) -> GenerationResult:
    """Poll with the sync hook until the task is terminal."""
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        result = hook.get_result(api, task_id)
        if result.status.is_terminal:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{api} task {task_id} did not finish")


@pytest.mark.parametrize("answer", ["flat", "legacy"])
@pytest.mark.parametrize("path", ["/v3/async/img2img", "/v3/async/txt2img", "/v3/async/wan-t2v"])
def test_novita_submit_answers_flat_and_legacy(emulator_connections: EmulatorControl, answer: str, path: str) -> None:
    emulator_connections.configure(novita_submit_answer=answer)
    hook = NovitaHook()
    task_id = hook.submit(get_api("novita").prepare(sample_body(path)[1], path))
    result = finish(hook, "novita", task_id)

    assert list(emulator_connections.stats()["tasks"]) == [task_id]
    assert result.status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("ttl_type", ["string", "integer"])
def test_image_url_ttl_string_or_integer_gives_an_expiry(emulator_connections: EmulatorControl, ttl_type: str) -> None:
    emulator_connections.configure(image_url_ttl_type=ttl_type)
    hook = NovitaHook()
    result = finish(
        hook, "novita", hook.submit(get_api("novita").prepare(sample_body("/v3/async/txt2img")[1], "/v3/async/txt2img"))
    )

    now = datetime.now(UTC)
    assert [output.kind for output in result.outputs] == ["image", "image"]
    for output in result.outputs:
        assert output.expires_at is not None
        assert now + timedelta(minutes=59) < output.expires_at <= now + timedelta(hours=1, seconds=1)


@pytest.mark.parametrize("shape", ["flat", "wrapped"])
@pytest.mark.parametrize(("prompt", "status"), [(None, TaskStatus.SUCCEEDED), ("fail", TaskStatus.FAILED)])
def test_avatar_results_flat_and_wrapped(
    emulator_connections: EmulatorControl, shape: str, prompt: str | None, status: TaskStatus
) -> None:
    emulator_connections.configure(avatar_result=shape)
    api, body = sample_body("/avatar/generation", prompt)
    hook = GptGeHook()
    task_id = hook.submit(get_api(api).prepare(body, "/avatar/generation"))
    result = finish(hook, api, task_id)

    assert (result.task_id, result.status) == (task_id, status)
    if status is TaskStatus.SUCCEEDED:
        assert result.outputs[0].url.startswith(emulator_connections.url)


@pytest.mark.parametrize("shape", ["flat", "wrapped"])
async def test_avatar_results_flat_and_wrapped_async(emulator_connections: EmulatorControl, shape: str) -> None:
    emulator_connections.configure(avatar_result=shape, video_seconds=0.3)
    hook = GptGeHook()
    submission = get_api("avatar").prepare(sample_body("/avatar/generation")[1], "/avatar/generation")
    task_id = await asyncio.to_thread(hook.submit, submission)
    async with hook:
        result = await hook.aget_result("avatar", task_id)
        seen = {result.status}
        while not result.status.is_terminal:
            await asyncio.sleep(0.05)
            result = await hook.aget_result("avatar", task_id)

    assert TaskStatus.RUNNING in seen
    assert result.status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        ("/v3/async/img2img", "novita_retry_after"),
        ("/task/jimeng/text2video", "gptge_retry_after"),
        ("/task/bailian/image2video", "gptge_retry_after"),
        ("/avatar/generation", "gptge_retry_after"),
    ],
)
@pytest.mark.parametrize("with_header", [False, True], ids=["no-retry-after", "retry-after"])
def test_a_429_is_retried_and_paid_once_with_or_without_retry_after(
    emulator_connections: EmulatorControl, path: str, setting: str, with_header: bool
) -> None:
    emulator_connections.configure(rate_limit={"next": 1}, retry_after=0, **{setting: with_header})
    api, body = sample_body(path)
    hook = hook_for(get_api(api))
    task_id = hook.submit(get_api(api).prepare(body, path))
    result = finish(hook, api, task_id)

    stats = emulator_connections.stats()
    assert (stats["submits"][api], stats["faults"]["rate_limit"]) == (1, 1)
    assert result.status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("path", ["/v3/async/txt2img", "/task/jimeng/text2video", "/task/bailian/text2video"])
def test_every_poll_gives_the_same_links_and_expiry(emulator_connections: EmulatorControl, path: str) -> None:
    api, body = sample_body(path)
    hook = hook_for(get_api(api))
    task_id = hook.submit(get_api(api).prepare(body, path))
    first = finish(hook, api, task_id)
    emulator_connections.configure(clock_offset=2)  # two seconds later: a re-signed link would expire later
    again = hook.get_result(api, task_id)

    assert [output.url for output in first.outputs] == [output.url for output in again.outputs]
    if api == "bailian":  # the parser reads the link's own Expires: the same instant on every poll
        assert [output.expires_at for output in first.outputs] == [output.expires_at for output in again.outputs]
