"""A local Airflow with the example DAGs on the local emulator: ``make up`` (or ``make up PORT=8090``).

Starts ``genmedia-emulator`` and Airflow's api-server (with the UI), scheduler, dag-processor and triggerer as
separate processes on 127.0.0.1, in a fresh AIRFLOW_HOME under ``.tmp/up`` (LocalExecutor, PostgreSQL in a throwaway
cluster). The example DAGs are read from ``example_dags/`` in place, so edits show up in the UI. The
``novita_default`` and ``gptge_default`` connections (aimed at the emulator) and the ``genmedia_video`` pool are
created in the metadata database, where the UI lists them. Prints the URL and waits; Ctrl-C (or SIGTERM) stops every
process it started, by PID, and so does SIGINT or SIGTERM sent to ``make`` alone (see `ParentWatch`).

It is the local stack harness of the deployment tests, ``genmedia_stack`` (`Deployment`, `EmulatorProcess`),
run for a person.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

from genmedia_stack import Deployment, EmulatorProcess, free_port

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 8080
#: The emulator's default key: it guards nothing but the emulator, and docs/emulator.md names it.
EMULATOR_KEY = "emulator-key"
VIDEO_POOL = {"name": "genmedia_video", "slots": 2, "description": "gpt.ge video jobs", "include_deferred": True}


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class ParentWatch:
    """Tells when the process that started this one is going away, so that ``make up`` stops when ``make`` alone gets
    SIGINT (``kill -INT <make's PID>``; a terminal's Ctrl-C reaches the whole process group instead).

    GNU make passes SIGTERM on to its children but not SIGINT: on SIGINT it sets the signal back to its default and
    waits for its children to end, which this one never would by itself. So the parent is going away when it ended
    (this process was handed to another parent) or when it no longer catches a fatal signal it caught at first
    (read from ``/proc``, so on Linux only).
    """

    SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)

    def __init__(self) -> None:
        self.pid = os.getppid()
        self.caught = self._caught()

    def _caught(self) -> set[signal.Signals]:
        """The fatal signals the parent catches now; none where ``/proc`` is missing."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return set()
        found = re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.MULTILINE)
        mask = int(found.group(1), 16) if found else 0
        return {sig for sig in self.SIGNALS if mask >> (sig - 1) & 1}

    def going(self) -> str | None:
        """Why the parent is going away, or None while it stays."""
        if os.getppid() != self.pid:
            return f"its parent (PID {self.pid}) ended"
        dropped = self.caught - self._caught()
        return f"its parent (PID {self.pid}) got {min(dropped).name}" if dropped else None


def banner(stack: Deployment, emulator: EmulatorProcess) -> str:
    """What a person needs to use the local Airflow."""
    pids = ", ".join(f"{name} {process.pid}" for name, process in stack.all_processes().items())
    return "\n".join(
        [
            "",
            f"Airflow is up: {stack.url}",
            "  No login: every visitor is an admin (SIMPLE_AUTH_MANAGER_ALL_ADMINS; it listens on 127.0.0.1 only).",
            f"  DAGs: {REPO / 'example_dags'}: none runs until you trigger it (the Trigger form unpauses it);",
            "    genmedia_contact_sheet, unpaused from the start, runs on what genmedia_img2img_pipeline publishes.",
            f"  Connections novita_default and gptge_default -> the emulator at {emulator.url} (key {EMULATOR_KEY}).",
            "  Pool genmedia_video: 2 slots, deferred tasks counted.",
            f"  Test a connection: curl -X POST {stack.url}/api/v2/connections/test -H 'Content-Type: "
            'application/json\' -d \'{"connection_id": "gptge_default", "conn_type": "gptge"}\'',
            f"  AIRFLOW_HOME: {stack.home}; component logs: {stack.logs}",
            f"  Metadata database: {stack.env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}",
            f"  Processes: emulator {emulator.process.pid if emulator.process else '?'}, {pids}",
            "Press Ctrl-C to stop them all.",
            "",
        ]
    )


def main() -> int:
    """Start the local Airflow, wait until Ctrl-C or a component dies, then stop everything it started."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="api-server port (default 8080, or a free one)")
    parser.add_argument("--root", default=str(REPO / ".tmp" / "up"), help="folder for AIRFLOW_HOME and logs")
    options = parser.parse_args()

    port = options.port if port_is_free(options.port) else free_port()
    if port != options.port:
        print(f"Port {options.port} is taken: using {port}", flush=True)
    root = Path(options.root).resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started as a background job
    parent = ParentWatch()

    emulator = EmulatorProcess(log=root / "emulator.log", api_key=EMULATOR_KEY)
    stack = Deployment(
        root=root,
        dag_sources=[],
        emulator=emulator,
        port=port,
        env_connections=False,
        extra_env={
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        },
    )
    try:
        print(f"Starting the emulator and Airflow on 127.0.0.1 (about 30 s; logs in {root})", flush=True)
        emulator.start()
        stack.start()
        for conn_id, connection in stack.vendor_connections().items():
            stack.api("POST", "/connections", json={"connection_id": conn_id, **connection})
        stack.api("POST", "/pools", json=VIDEO_POOL)
        print(banner(stack, emulator), flush=True)
        while True:
            dead = [name for name, process in stack.all_processes().items() if process.poll() is not None]
            if emulator.process is not None and emulator.process.poll() is not None:
                dead.append("emulator")
            if dead:
                print(f"Stopped unexpectedly: {', '.join(dead)} (see {stack.logs} and {emulator.log})", flush=True)
                return 1
            if reason := parent.going():
                print(f"\nStopping: {reason}...", flush=True)
                return 0
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stopping short
        stack.stop()
        emulator.stop()
        print("Stopped every process started here.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
