"""``make up`` (scripts/up.py): a local Airflow for a person, on the emulator, that stops completely on Ctrl-C, and on
SIGINT or SIGTERM sent to ``make`` alone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest
import requests

from genmedia_stack import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 150.0
#: How long stopping everything may take, from the signal to make's end.
STOP_TIMEOUT = 90.0
EXAMPLE_DAGS = {
    "genmedia_img2img_pipeline",
    "genmedia_contact_sheet",
    "genmedia_batch_video",
    "genmedia_avatar",
    "genmedia_human_review",
}
#: How each ``make up`` of this module is stopped: a signal sent to make alone (``kill -INT <make's PID>``; make
#: passes SIGTERM on to its children, SIGINT not), or to make's whole process group, as a terminal's Ctrl-C does.
STOPS: dict[str, tuple[signal.Signals, Callable[[int, int], None]]] = {
    "SIGINT to make alone": (signal.SIGINT, os.kill),
    "SIGTERM to make alone": (signal.SIGTERM, os.kill),
    "Ctrl-C in a terminal": (signal.SIGINT, os.killpg),
}
#: Runs make as a terminal's shell does, SIGINT at its default action: a test run started as a background job of a
#: non-interactive shell ignores SIGINT, and so would make, which leaves an ignored signal ignored.
AS_FROM_A_SHELL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp('make', sys.argv[1:])"
)
MAKE_UP = ["make", "--no-print-directory", "-o", ".venv/.installed", "up"]


class Up:
    """``make up`` running in a process group of its own, as a terminal runs it, its output read line by line."""

    def __init__(self, root: Path, port: int) -> None:
        # Neither this test run's Airflow settings nor, under `make test`, the outer make's flags and job server.
        own = ("AIRFLOW", "_AIRFLOW", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
        env = {key: value for key, value in os.environ.items() if not key.startswith(own)}
        self.process = subprocess.Popen(
            # `make test` installed the venv (.venv/.installed) before it ran this: a test never reinstalls it.
            [sys.executable, "-c", AS_FROM_A_SHELL, *MAKE_UP, f"PORT={port}", f"UP_ROOT={root}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: Queue[str] = Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.url = ""
        self.pids: dict[str, int] = {}

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
                assert self.process.poll() is None, "make up stopped:\n" + "".join(self.output)
                return None
            self.output.append(line)
            return re.search(pattern, line)

        return wait_until(next_match, timeout, f"a line matching {pattern!r}", interval=0)


@pytest.fixture(scope="module", params=list(STOPS))
def up(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, str]]:
    """``make up`` started, up to its banner (the URL and the PIDs it names), and how the test stops it."""
    started = Up(tmp_path_factory.mktemp("up"), free_port())
    try:
        started.url = started.wait_for(r"Airflow is up: (http://127\.0\.0\.1:\d+)", STARTUP_TIMEOUT).group(1)
        pids = started.wait_for(r"Processes: (.*)", 10).group(1)
        started.pids = {name: int(pid) for name, pid in re.findall(r"([\w-]+) (\d+)", pids)}
        yield started, request.param
    finally:
        if started.process.poll() is None:  # a test failed before it stopped it: Ctrl-C
            os.killpg(started.process.pid, signal.SIGINT)
            started.process.wait(STOP_TIMEOUT)
        started.reader.join(10)
        assert started.process.stdout is not None
        started.process.stdout.close()


def api(url: str, method: str, path: str, **kwargs: Any) -> Any:
    """One REST call, as the UI makes it (no login: every visitor is an admin)."""
    response = requests.request(method, f"{url}/api/v2{path}", timeout=30, **kwargs)
    assert response.ok, f"{method} {path}: HTTP {response.status_code} {response.text[:300]}"
    return response.json()


def test_make_up_serves_the_examples_with_connections_and_the_pool(up: tuple[Up, str]) -> None:
    started, _ = up
    url, pids = started.url, started.pids
    assert set(pids) == {"emulator", "postgres", "api-server", "scheduler", "dag-processor", "triggerer"}
    health = api(url, "GET", "/monitor/health")
    assert {part: health[part]["status"] for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }
    wait_until(lambda: {dag["dag_id"] for dag in api(url, "GET", "/dags")["dags"]} >= EXAMPLE_DAGS, 90, "the DAGs")
    assert api(url, "GET", "/importErrors")["total_entries"] == 0
    dags = {dag["dag_id"]: dag for dag in api(url, "GET", "/dags")["dags"]}
    # Nothing starts by itself: the examples that pay wait, paused and with no time to run at, for a click; the
    # contact sheet, which pays nothing, is unpaused and runs on what the img2img pipeline publishes.
    paused = {dag_id: dag["is_paused"] for dag_id, dag in dags.items()}
    assert paused == dict.fromkeys(EXAMPLE_DAGS, True) | {"genmedia_contact_sheet": False}
    assert {dag_id: dag["next_dagrun_run_after"] for dag_id, dag in dags.items()} == dict.fromkeys(EXAMPLE_DAGS)
    connections = {conn["connection_id"]: conn for conn in api(url, "GET", "/connections")["connections"]}
    assert {connections[conn_id]["conn_type"] for conn_id in ("novita_default", "gptge_default")} == {"novita", "gptge"}
    emulator = connections["gptge_default"]["host"]
    assert requests.get(f"{emulator}/_emulator/stats", timeout=10).ok
    pool = api(url, "GET", "/pools/genmedia_video")
    assert (pool["slots"], pool["include_deferred"]) == (2, True)
    tested = api(url, "POST", "/connections/test", json={"connection_id": "gptge_default", "conn_type": "gptge"})
    assert tested == {"status": True, "message": f"Connected to gpt.ge at {emulator}; the API key was accepted."}


def test_the_signal_stops_every_process_make_up_started(up: tuple[Up, str]) -> None:
    started, stop = up
    sig, send = STOPS[stop]
    send(started.process.pid, sig)  # make leads its process group: the group's id is its PID
    # make ends once its child did, by the same signal, which it raises again on itself.
    assert started.process.wait(STOP_TIMEOUT) == -sig
    started.wait_for(r"Stopped every process started here", 5)
    # make's group (make, scripts/up.py), then each component's: each leads its own (workers, trigger runner).
    for pid in [started.process.pid, *started.pids.values()]:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    with pytest.raises(requests.ConnectionError):
        requests.get(started.url, timeout=5)
