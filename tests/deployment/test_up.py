"""``make up`` (scripts/up.py): a local Airflow for a person, on the emulator, that Ctrl-C stops completely."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest
import requests

from genmedia_emulator.stack import free_port, wait_until

UP_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "up.py"
STARTUP_TIMEOUT = 150.0
EXAMPLE_DAGS = {
    "genmedia_img2img_pipeline",
    "genmedia_contact_sheet",
    "genmedia_batch_video",
    "genmedia_avatar",
    "genmedia_human_review",
}


class Up:
    """``scripts/up.py`` running in its own process, its output read line by line."""

    def __init__(self, root: Path, port: int) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "_AIRFLOW"))}
        self.process = subprocess.Popen(
            [sys.executable, str(UP_SCRIPT), "--port", str(port), "--root", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: Queue[str] = Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line matching ``pattern`` (a regular expression)."""

        def next_match() -> re.Match[str] | None:
            try:
                line = self.lines.get(timeout=0.5)
            except Empty:
                assert self.process.poll() is None, "scripts/up.py stopped:\n" + "".join(self.output)
                return None
            self.output.append(line)
            return re.search(pattern, line)

        return wait_until(next_match, timeout, f"a line matching {pattern!r}", interval=0)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, str, dict[str, int]]]:
    """``make up``'s script started, up to its banner: the process, the URL it printed, the PIDs it names."""
    started = Up(tmp_path_factory.mktemp("up"), free_port())
    try:
        url = started.wait_for(r"Airflow is up: (http://127\.0\.0\.1:\d+)", STARTUP_TIMEOUT).group(1)
        pids = started.wait_for(r"Processes: (.*)", 10).group(1)
        yield started, url, {name: int(pid) for name, pid in re.findall(r"([\w-]+) (\d+)", pids)}
    finally:
        if started.process.poll() is None:
            started.process.send_signal(signal.SIGINT)
            started.process.wait(60)
        started.reader.join(10)
        assert started.process.stdout is not None
        started.process.stdout.close()


def api(url: str, method: str, path: str, **kwargs: Any) -> Any:
    """One REST call, as the UI makes it (no login: every visitor is an admin)."""
    response = requests.request(method, f"{url}/api/v2{path}", timeout=30, **kwargs)
    assert response.ok, f"{method} {path}: HTTP {response.status_code} {response.text[:300]}"
    return response.json()


def test_make_up_serves_the_examples_with_connections_and_the_pool(up: tuple[Up, str, dict[str, int]]) -> None:
    _, url, pids = up
    assert set(pids) == {"emulator", "api-server", "scheduler", "dag-processor", "triggerer"}
    health = api(url, "GET", "/monitor/health")
    assert {part: health[part]["status"] for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }
    wait_until(lambda: {dag["dag_id"] for dag in api(url, "GET", "/dags")["dags"]} >= EXAMPLE_DAGS, 90, "the DAGs")
    assert api(url, "GET", "/importErrors")["total_entries"] == 0
    connections = {conn["connection_id"]: conn for conn in api(url, "GET", "/connections")["connections"]}
    assert {connections[conn_id]["conn_type"] for conn_id in ("novita_default", "gptge_default")} == {"novita", "gptge"}
    emulator = connections["gptge_default"]["host"]
    assert requests.get(f"{emulator}/_emulator/stats", timeout=10).ok
    pool = api(url, "GET", "/pools/genmedia_video")
    assert (pool["slots"], pool["include_deferred"]) == (2, True)
    tested = api(url, "POST", "/connections/test", json={"connection_id": "gptge_default", "conn_type": "gptge"})
    assert tested == {"status": True, "message": f"Connected to gpt.ge at {emulator}; the API key was accepted."}


def test_ctrl_c_stops_every_process_make_up_started(up: tuple[Up, str, dict[str, int]]) -> None:
    started, url, pids = up
    started.process.send_signal(signal.SIGINT)
    assert started.process.wait(90) == 0
    started.wait_for(r"Stopped every process started here", 5)
    for pid in pids.values():  # each component leads its own process group (workers, trigger runner)
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
