"""Streamed downloads against a scripted local HTTP server: retries of transient failures, and only of those."""

from __future__ import annotations

import hashlib
import io
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_genmedia.downloads import DOWNLOAD_ATTEMPTS, download_to
from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaConnectionError,
    GenMediaError,
    GenMediaNotFoundError,
    GenMediaRateLimitError,
    GenMediaServerError,
    LinkExpiredError,
    MediaTooLargeError,
)
from tests.conftest import trust_origins

BODY = bytes(range(256)) * 64  # 16 KiB


@dataclass(frozen=True)
class Answer:
    """One scripted answer: ``status`` and ``body``; ``cut`` sends only that many bytes of the announced body."""

    status: int = 200
    body: bytes = BODY
    headers: dict[str, str] = field(default_factory=dict)
    cut: int | None = None


class MediaServer(ThreadingHTTPServer):
    """Answers every GET with its script in turn (the last answer repeats) and counts the requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: tuple[Answer, ...] = (Answer(),)
        self.requests = 0

    def url(self, path: str = "/media.mp4?X-Amz-Signature=secret") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def next_answer(self) -> Answer:
        self.requests += 1
        return self.script[min(self.requests, len(self.script)) - 1]


class _Handler(BaseHTTPRequestHandler):
    server: MediaServer

    def do_GET(self) -> None:
        answer = self.server.next_answer()
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body if answer.cut is None else answer.body[: answer.cut])
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaServer]:
    running = MediaServer()
    trust_origins(monkeypatch, running.url("/"))
    # A short poll interval: shutdown() waits for the serving loop to look, 0.5 s by default.
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def test_a_body_cut_short_is_downloaded_again_from_where_the_download_started(server: MediaServer) -> None:
    server.script = (Answer(cut=5000), Answer())
    file = io.BytesIO()
    file.write(b"kept before")
    download = download_to(server.url(), file, chunk_size=1024)
    assert server.requests == 2
    assert file.getvalue() == b"kept before" + BODY  # nothing of the cut try left, nothing duplicated
    assert (download.sha256, download.size) == (hashlib.sha256(BODY).hexdigest(), len(BODY))


def test_a_503_is_retried_and_the_log_shows_no_signature(server: MediaServer, caplog: pytest.LogCaptureFixture) -> None:
    server.script = (Answer(503, b"busy"), Answer())
    with caplog.at_level(logging.WARNING, logger="airflow_provider_genmedia.downloads"):
        download = download_to(server.url(), io.BytesIO())
    assert server.requests == 2
    assert download.sha256 == hashlib.sha256(BODY).hexdigest()
    [retry] = [record.getMessage() for record in caplog.records]
    assert "HTTP 503: GET " in retry and "failed; retrying in" in retry and "(attempt 2)" in retry
    assert "/media.mp4" in retry and "secret" not in retry


def test_retry_after_is_honoured(server: MediaServer, caplog: pytest.LogCaptureFixture) -> None:
    server.script = (Answer(429, b"slow down", {"Retry-After": "7"}), Answer())
    with caplog.at_level(logging.WARNING, logger="airflow_provider_genmedia.downloads"):
        download_to(server.url(), io.BytesIO())
    assert server.requests == 2
    assert "retrying in 7.0 s" in caplog.text  # the wait asked, not the backoff (computed and logged, not spent here)


def test_a_server_that_keeps_failing_is_given_up_on_after_the_limit(server: MediaServer) -> None:
    server.script = (Answer(500, b"oops", {"Retry-After": "0"}),)
    with pytest.raises(GenMediaServerError, match=r"^HTTP 500: GET \S+/media\.mp4 failed$") as error:
        download_to(server.url(), io.BytesIO())
    assert server.requests == DOWNLOAD_ATTEMPTS
    assert error.value.status_code == 500 and "secret" not in str(error.value)


def test_a_refused_connection_is_retried_and_raised_as_never_connected(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    trust_origins(monkeypatch, f"http://127.0.0.1:{port}")
    with pytest.raises(GenMediaConnectionError, match=r"GET http://127\.0\.0\.1:\d+/media\.mp4 failed") as error:
        download_to(f"http://127.0.0.1:{port}/media.mp4?X-Amz-Signature=secret", io.BytesIO())
    assert not error.value.connected and error.value.resendable
    assert "secret" not in str(error.value)


@pytest.mark.parametrize(
    ("answer", "error", "max_bytes"),
    [
        (Answer(403, b"AccessDenied"), LinkExpiredError, 2**20),
        (Answer(410, b"Gone"), LinkExpiredError, 2**20),
        (Answer(404, b"NoSuchKey"), GenMediaNotFoundError, 2**20),
        (Answer(400, b"BadRequest"), GenMediaAPIError, 2**20),
        (Answer(), MediaTooLargeError, 1000),
    ],
    ids=["expired-link", "gone", "not-found", "bad-request", "too-large"],
)
def test_a_lasting_failure_is_not_retried(
    server: MediaServer, answer: Answer, error: type[GenMediaError], max_bytes: int
) -> None:
    server.script = (answer, Answer())
    with pytest.raises(error) as raised:
        download_to(server.url(), io.BytesIO(), max_bytes=max_bytes)
    assert server.requests == 1
    assert not raised.value.transient


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, GenMediaRateLimitError),
        (500, GenMediaServerError),
        (502, GenMediaServerError),
        (503, GenMediaServerError),
        (504, GenMediaServerError),
    ],
)
def test_a_busy_answer_raises_the_class_a_vendor_answer_would(
    server: MediaServer, status: int, error: type[GenMediaAPIError]
) -> None:
    server.script = (Answer(status, b"busy", {"Retry-After": "0"}),)
    with pytest.raises(error) as raised:
        download_to(server.url(), io.BytesIO())
    assert server.requests == DOWNLOAD_ATTEMPTS
    assert (raised.value.status_code, raised.value.retry_after) == (status, 0.0)
    assert raised.value.transient
