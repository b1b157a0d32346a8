"""A scripted vendor on a real local HTTP server, with bodies shaped like the vendors' task-result examples.

Novita: https://novita.ai/docs/api-reference/model-apis-task-result; Jimeng:
https://gpt.morphogen.top/en/video/jimeng/query-results.html (see also docs/vendor-sources.md).
"""

from __future__ import annotations

import json
import socketserver
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

API_KEY = "emulator-key"


@dataclass(frozen=True)
class Answer:
    """One scripted HTTP answer, sent after ``delay`` seconds."""

    body: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class ScriptedRoute:
    """Answers one route with its answers in turn (the last one repeats) and records when each call came."""

    def __init__(self, answers: tuple[Answer, ...]) -> None:
        self.answers = answers
        self.calls: list[float] = []
        self.authorizations: list[str | None] = []

    def __call__(self, request: Request) -> Response:
        self.calls.append(time.time())
        self.authorizations.append(request.headers.get("Authorization"))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        time.sleep(answer.delay)  # the behaviour under test: a scripted slow answer of the local vendor
        return Response(json.dumps(answer.body), answer.status, answer.headers, content_type="application/json")


class PromptlyStoppedServer(HTTPServer):
    """pytest-httpserver's server, stopped at once: its serving loop looks for a stop every 10 ms (not werkzeug's
    0.5 s), and closing it does not wait for a scripted slow answer still sleeping in its thread."""

    def thread_target(self) -> None:
        assert self.server is not None
        if isinstance(self.server, socketserver.ThreadingMixIn):
            self.server.block_on_close = False
        self.server.serve_forever(poll_interval=0.01)


@contextmanager
def local_server() -> Iterator[HTTPServer]:
    """A threaded HTTP server on 127.0.0.1 and a free port, so a slow answer does not hold up the next."""
    server = PromptlyStoppedServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def novita_route(server: HTTPServer, task_id: str, *answers: Answer) -> ScriptedRoute:
    """Script Novita's ``GET /v3/async/task-result?task_id=...``."""
    route = ScriptedRoute(answers)
    server.expect_request("/v3/async/task-result", query_string={"task_id": task_id}).respond_with_handler(route)
    return route


def gptge_route(server: HTTPServer, task_id: str, *answers: Answer) -> ScriptedRoute:
    """Script gpt.ge's ``GET /task/{task_id}`` (Jimeng and Bailian)."""
    route = ScriptedRoute(answers)
    server.expect_request(f"/task/{task_id}").respond_with_handler(route)
    return route


def use_connection(
    monkeypatch: pytest.MonkeyPatch, conn_type: str, server: HTTPServer, max_retries: int = 1, **extras: Any
) -> None:
    """Point ``<conn_type>_default`` at the local server through an ``AIRFLOW_CONN_*`` variable, with ``extras``."""
    conn = {
        "conn_type": conn_type,
        "host": server.url_for("/"),
        "password": API_KEY,
        "extra": {"max_retries": max_retries, **extras},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_type.upper()}_DEFAULT", json.dumps(conn))


def novita_task(
    task_id: str, status: str, *, progress: float = 0, eta: float = 0, reason: str = "", images: int = 0
) -> dict[str, Any]:
    """A Novita task-result body shaped like the documented example."""
    return {
        "extra": {
            "seed": "158881667",
            "enable_nsfw_detection": False,
            "debug_info": {"request_info": "", "submit_time_ms": "", "execute_time_ms": "", "complete_time_ms": ""},
        },
        "task": {
            "task_id": task_id,
            "status": status,
            "reason": reason,
            "task_type": "IMG_TO_IMG",
            "eta": eta,
            "progress_percent": progress,
        },
        "images": [
            {
                "image_url": f"https://faas-output-image.s3.ap-southeast-1.amazonaws.com/prod/{task_id}-{index}.png",
                "image_url_ttl": 3600,
                "image_type": "png",
                "nsfw_detection_result": {},
            }
            for index in range(images)
        ],
        "videos": [],
        "audios": [],
    }


def jimeng_task(status: str, video_url: str | None = None) -> dict[str, Any]:
    """A gpt.ge Jimeng task body shaped like the documented example."""
    return {
        "code": 10000,
        "data": {
            "status": status,
            "resp_data": '{"infer_ctx":{"params":{"seed":1460981510}}}' if video_url else "",
            "video_url": video_url,
            "image_urls": None,
            "binary_data_base64": [],
        },
        "status": 10000,
        "message": "Success",
        "request_id": "20250502011924C67A8E37411A922F5942",
        "time_elapsed": "131.322333ms",
    }
