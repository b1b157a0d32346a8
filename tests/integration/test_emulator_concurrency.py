"""200 tasks submitted and polled at once against one emulator all complete, with exact counts."""

from __future__ import annotations

import asyncio
import io
import itertools
from collections import Counter

import aiohttp
from PIL import Image

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.hooks.genmedia import GenMediaHook, GptGeHook, NovitaHook
from airflow_provider_genmedia.results import GenerationResult, TaskStatus
from tests.emulator_fixtures import SAMPLE_SUBMITS, EmulatorControl

TASKS = 200
POLL_INTERVAL = 0.1
DEADLINE = 60.0


async def submit(session: aiohttp.ClientSession, emulator: EmulatorControl, api: str, path: str, body: dict) -> str:
    """Submit over aiohttp and return the task id."""
    async with session.post(f"{emulator.url}{path}", json=body, headers=emulator.headers) as response:
        assert response.status == 200, await response.text()
        return get_api(api).parse_submit(await response.json())


async def follow(hook: GenMediaHook, api: str, task_id: str) -> tuple[GenerationResult, int]:
    """Poll with the async hook until terminal; return the result and the number of polls."""
    polls = 0
    while True:
        result = await hook.aget_result(api, task_id)
        polls += 1
        if result.status.is_terminal:
            return result, polls
        await asyncio.sleep(POLL_INTERVAL)


async def check_output(session: aiohttp.ClientSession, kind: str, url: str) -> None:
    """Download one output and check it is the image or MP4 it claims to be."""
    async with session.get(url) as response:
        assert response.status == 200
        content = await response.read()
    if kind == "image":
        assert Image.open(io.BytesIO(content)).size == (256, 192)
    else:
        assert content[4:8] == b"ftyp"


async def test_200_concurrent_tasks_complete(emulator_connections: EmulatorControl) -> None:
    emulator_connections.configure(image_seconds=0.4, video_seconds=0.8)
    plans = list(itertools.islice(itertools.cycle(SAMPLE_SUBMITS), TASKS))
    async with aiohttp.ClientSession() as session, NovitaHook() as novita, GptGeHook() as gptge:
        task_ids = await asyncio.gather(*(submit(session, emulator_connections, *plan) for plan in plans))
        followed = await asyncio.wait_for(
            asyncio.gather(
                *(
                    follow(novita if api == "novita" else gptge, api, task_id)
                    for (api, _, _), task_id in zip(plans, task_ids, strict=True)
                )
            ),
            DEADLINE,
        )
        results = [result for result, _ in followed]
        await asyncio.gather(
            *(check_output(session, output.kind, output.url) for result in results for output in result.outputs)
        )

    assert len(set(task_ids)) == TASKS
    assert all(result.status is TaskStatus.SUCCEEDED for result in results)
    stats = emulator_connections.stats()
    assert stats["submits"] == dict(Counter(api for api, _, _ in plans))
    assert sum(stats["polls"].values()) == sum(polls for _, polls in followed)
    assert {task_id: stats["tasks"][task_id]["polls"] for task_id in task_ids} == {
        task_id: polls for task_id, (_, polls) in zip(task_ids, followed, strict=True)
    }
    assert sum(row["downloads"] for row in stats["tasks"].values()) == sum(len(result.outputs) for result in results)
