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

from airflow_provider_genmedia.emulator.cli import config_from_args
from airflow_provider_genmedia.emulator.config import FaultRule

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
    body = {"prompt": "a lighthouse", "width": 64, "height": 64}

    assert requests.post(f"{cli_server}/v3/async/txt2img-lite", json=body, timeout=5).status_code == 401
    assert (
        requests.post(f"{cli_server}/v3/async/txt2img-lite", json=body, headers=headers, timeout=5).status_code == 429
    )
    task = requests.post(f"{cli_server}/v3/async/txt2img-lite", json=body, headers=headers, timeout=5).json()
    result = requests.get(f"{cli_server}/v3/async/task-result", params=task, headers=headers, timeout=5).json()
    assert result["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert requests.get(result["images"][0]["image_url"], timeout=5).content.startswith(b"\x89PNG")


def test_the_submit_cut_fault_has_flags() -> None:
    _, config = config_from_args(["--submit-cut-every", "3", "--submit-cut-next", "1", "--submit-cut-rate", "0.5"])
    assert config.submit_cut == FaultRule(next=1, every=3, rate=0.5)
