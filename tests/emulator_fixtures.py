"""Fixtures that run the local emulator of the four vendor APIs (a pytest plugin, see tests/conftest.py).

- ``emulator``: an `EmulatorControl` for one emulator process-wide server, reset before and after each test
  (tasks, counters and settings), so tests never see each other's stats. Tasks are fast here (``TEST_CONFIG``):
  image tasks take 0.1 s, video tasks 0.2 s, and injected 429s say ``Retry-After: 0``;
  ``emulator.configure(...)`` changes any setting for the current test.
- ``emulator_connections``: the same, with ``AIRFLOW_CONN_NOVITA_DEFAULT`` and ``AIRFLOW_CONN_GPTGE_DEFAULT``
  pointing at the emulator, so hooks, operators and triggers on their default connections talk to it.
- ``SAMPLE_SUBMITS``: one valid submit ``(api, path, body)`` per route, for tests that just need a task, and
  ``sample_body(path, prompt)`` to put a marker word (``fail``, ``expire``, ``nsfw``) in one.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from PIL import Image

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.results import GenerationResult
from genmedia_emulator import EmulatorConfig, EmulatorServer

TEST_CONFIG = EmulatorConfig(image_seconds=0.1, video_seconds=0.2, retry_after=0)
CONTROL_TIMEOUT = 10
POLL_INTERVAL = 0.05
WAIT_LIMIT = 15.0


def png_base64(width: int = 96, height: int = 64, color: tuple[int, int, int] = (200, 60, 30)) -> str:
    """A small PNG as base64, the kind of input img2img takes."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


_SD_REQUEST = {"model_name": "sd_xl_base_1.0.safetensors", "prompt": "a cute dog", "width": 256, "height": 192}
_SD_REQUEST |= {"image_num": 2, "steps": 20, "guidance_scale": 7.5, "sampler_name": "Euler a", "seed": 42}
SAMPLE_SUBMITS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "novita",
        "/v3/async/img2img",
        {"extra": {"response_image_type": "png"}, "request": {**_SD_REQUEST, "image_base64": png_base64()}},
    ),
    ("novita", "/v3/async/txt2img", {"extra": {"response_image_type": "jpeg"}, "request": _SD_REQUEST}),
    ("novita", "/v3/async/wan-t2v", {"prompt": "a boat at dawn", "width": 832, "height": 480, "seed": 7}),
    ("jimeng", "/task/jimeng/text2video", {"prompt": "a cat surfing", "aspect_ratio": "16:9", "seed": 5}),
    ("jimeng", "/task/jimeng/image2video", {"prompt": "the cat waves", "image_urls": ["https://example.com/cat.png"]}),
    (
        "bailian",
        "/task/bailian/text2video",
        {"model": "wan2.6-t2v", "input": {"prompt": "a red kite"}, "parameters": {"size": "1280*720", "duration": 5}},
    ),
    (
        "bailian",
        "/task/bailian/image2video",
        {
            "model": "wan2.6-i2v",
            "input": {"prompt": "it flies", "img_url": "https://example.com/kite.png"},
            "parameters": {"resolution": "720P", "duration": 5},
        },
    ),
    (
        "avatar",
        "/avatar/generation",
        {"avatar_url": "https://example.com/face.png", "audio_url": "https://example.com/hello.mp3"},
    ),
)


def sample_body(path: str, prompt: str | None = None) -> tuple[str, dict[str, Any]]:
    """The API and a copy of the sample body of ``path``, its prompt replaced by ``prompt`` when given.

    The avatar API has no prompt: ``prompt`` goes into its audio URL, where the emulator looks for markers.
    """
    api, body = next((api, body) for api, sample_path, body in SAMPLE_SUBMITS if sample_path == path)
    body = json.loads(json.dumps(body))
    if prompt is not None:
        if api == "avatar":
            body["audio_url"] = f"https://example.com/{prompt.replace(' ', '-')}.mp3"
        else:
            (body.get("request") or body.get("input") or body)["prompt"] = prompt
    return api, body


@dataclass(frozen=True)
class EmulatorControl:
    """A running emulator: its base ``url`` and ``api_key``, and its control routes."""

    url: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        """The bearer header the emulator accepts."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to an API route with the emulator's key (``path`` may carry a query)."""
        return requests.request(method, f"{self.url}{path}", headers=self.headers, timeout=CONTROL_TIMEOUT, **kwargs)

    def submit(self, api: str, path: str, body: dict[str, Any]) -> str:
        """Submit ``body`` over plain HTTP, expect success, and return the task id."""
        response = self.call("POST", path, json=body)
        assert response.status_code == 200, response.text
        return get_api(api).parse_submit(response.json())

    def poll(self, api: str, task_id: str) -> requests.Response:
        """One poll of the task's result route."""
        return self.call("GET", get_api(api).result_path(task_id))

    def wait(self, api: str, task_id: str) -> requests.Response:
        """Poll until the answer is an HTTP error or a terminal state, and return that answer."""
        deadline = time.monotonic() + WAIT_LIMIT
        while time.monotonic() < deadline:
            response = self.poll(api, task_id)
            if response.status_code != 200 or get_api(api).parse_result(task_id, response.json()).status.is_terminal:
                return response
            time.sleep(POLL_INTERVAL)
        raise AssertionError(f"{api} task {task_id} did not finish within {WAIT_LIMIT} s")

    def result(self, api: str, task_id: str) -> GenerationResult:
        """The task's final state (expected as HTTP 200), read by the project's own parser."""
        response = self.wait(api, task_id)
        assert response.status_code == 200, response.text
        return get_api(api).parse_result(task_id, response.json())

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``: submits and polls per API, faults, per-task counts."""
        response = requests.get(f"{self.url}/_emulator/stats", timeout=CONTROL_TIMEOUT)
        response.raise_for_status()
        return response.json()

    def configure(self, **settings: Any) -> dict[str, Any]:
        """``POST /_emulator/config`` with `EmulatorConfig` fields, e.g. ``rate_limit={"next": 1}``."""
        response = requests.post(f"{self.url}/_emulator/config", json=settings, timeout=CONTROL_TIMEOUT)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """``POST /_emulator/reset``: forget tasks and counts, restore the fixture's settings."""
        requests.post(f"{self.url}/_emulator/reset", timeout=CONTROL_TIMEOUT).raise_for_status()


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """One emulator on a free loopback port for the whole session (use ``emulator`` in tests)."""
    with EmulatorServer(TEST_CONFIG) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Iterator[EmulatorControl]:
    """The session's emulator, freshly reset for this test."""
    control = EmulatorControl(url=emulator_server.url, api_key=TEST_CONFIG.api_key)
    control.reset()
    yield control
    control.reset()


@pytest.fixture
def emulator_connections(emulator: EmulatorControl, monkeypatch: pytest.MonkeyPatch) -> EmulatorControl:
    """``novita_default`` and ``gptge_default`` connections (environment variables) aimed at the emulator."""
    for conn_id, conn_type in (("NOVITA_DEFAULT", "novita"), ("GPTGE_DEFAULT", "gptge")):
        connection = {
            "conn_type": conn_type,
            "host": emulator.url,
            "password": emulator.api_key,
            "extra": {"max_retries": 2, "timeout": 30},
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps(connection))
    return emulator
