"""The ``genmedia-emulator`` console script: flags become settings, and the server answers on its port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from genmedia_emulator.cli import config_from_args
from genmedia_emulator.config import FaultRule
from tests.emulator_fixtures import sample_body

STARTUP_LIMIT = 20.0


def test_flags_become_settings() -> None:
    args, config = config_from_args(
        [
            "--port",
            "9000",
            "--api-key",
            "k",
            "--time-scale",
            "0.5",
            "--rate-limit-every",
            "4",
            "--drop-download-next",
            "2",
        ]
    )
    assert (args.host, args.port) == ("127.0.0.1", 9000)
    assert (config.api_key, config.time_scale, config.url_ttl) == ("k", 0.5, None)
    assert config.rate_limit == FaultRule(every=4)
    assert config.drop_download == FaultRule(next=2)
    assert config.server_error == FaultRule()


def test_bad_flags_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config_from_args(["--time-scale", "0", "--server-error-rate", "2"])
    error = capsys.readouterr().err
    assert "time_scale" in error and "server_error.rate" in error


@pytest.fixture
def cli_server() -> Iterator[str]:
    """``genmedia-emulator`` running as its own process on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(sys.executable).with_name("genmedia-emulator")
    command = [
        str(script),
        "--port",
        str(port),
        "--api-key",
        "cli-key",
        "--rate-limit-next",
        "1",
        "--image-seconds",
        "0",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/_emulator/config", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_the_console_script_serves_the_apis(cli_server: str) -> None:
    headers = {"Authorization": "Bearer cli-key"}
    _, body = sample_body("/v3/async/txt2img", "a lighthouse")
    body["extra"]["response_image_type"] = "png"
    route = f"{cli_server}/v3/async/txt2img"

    assert requests.post(route, json=body, timeout=5).status_code == 401
    limited = requests.post(route, json=body, headers=headers, timeout=5)
    assert limited.status_code == 429
    assert "Retry-After" not in limited.headers  # Novita documents no such header
    task = requests.post(route, json=body, headers=headers, timeout=5).json()
    result = requests.get(f"{cli_server}/v3/async/task-result", params=task, headers=headers, timeout=5).json()
    assert result["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert requests.get(result["images"][0]["image_url"], timeout=5).content.startswith(b"\x89PNG")


def test_the_submit_cut_fault_has_flags() -> None:
    _, config = config_from_args(["--submit-cut-every", "3", "--submit-cut-next", "1", "--submit-cut-rate", "0.5"])
    assert config.submit_cut == FaultRule(next=1, every=3, rate=0.5)


def test_the_vendor_variants_have_flags() -> None:
    _, defaults = config_from_args([])
    _, config = config_from_args(
        [
            "--novita-submit-answer",
            "legacy",
            "--image-url-ttl-type",
            "integer",
            "--avatar-result",
            "wrapped",
            "--novita-retry-after",
            "--no-gptge-retry-after",
            "--url-signing",
            "per_poll",
        ]
    )
    assert (defaults.novita_submit_answer, defaults.image_url_ttl_type, defaults.avatar_result) == (
        "flat",
        "string",
        "flat",
    )
    assert (defaults.novita_retry_after, defaults.gptge_retry_after, defaults.url_signing) == (False, False, "once")
    assert (config.novita_submit_answer, config.image_url_ttl_type, config.avatar_result) == (
        "legacy",
        "integer",
        "wrapped",
    )
    assert (config.novita_retry_after, config.gptge_retry_after, config.url_signing) == (True, False, "per_poll")


def test_a_variant_outside_its_choices_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config_from_args(["--avatar-result", "nested"])
    assert "invalid choice" in capsys.readouterr().err
