"""A real Airflow deployment on loopback: api-server, scheduler, dag-processor and triggerer as separate processes.

`Deployment` prepares a throwaway AIRFLOW_HOME (SQLite, LocalExecutor), starts each component in its own process
group, talks to it over the REST API, and stops every process it started by PID. `EmulatorProcess` runs the
vendor emulator as its own process, the way a vendor is another machine. Connections reach the components as
``AIRFLOW_CONN_*`` environment variables, never through the metadata database.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from cryptography.fernet import Fernet
from packaging.version import Version

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
#: Components in start order; a triggerer may run more than once (HA).
COMPONENTS = {
    "api-server": ["api-server", "-H", "127.0.0.1", "-p", "{port}", "-w", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
#: The Airflow the components run: the one installed next to this interpreter (``make test-compat`` runs each venv's).
AIRFLOW_VERSION = Version(version("apache-airflow"))
T = TypeVar("T")


def airflow_at_least(minimum: str) -> bool:
    """True when the Airflow the components run is ``minimum`` or newer."""
    return Version(minimum) <= AIRFLOW_VERSION


def requires_airflow(minimum: str, feature: str) -> pytest.MarkDecorator:
    """Skip a test on an Airflow older than ``minimum``, saying which feature it needs and which version ran."""
    return pytest.mark.skipif(
        not airflow_at_least(minimum), reason=f"{feature} needs Airflow {minimum}+; this is {AIRFLOW_VERSION}"
    )


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call ``check`` until it returns something other than None (or False); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _clean_environment() -> dict[str, str]:
    """This process's environment without the test run's own Airflow settings and connections."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "_AIRFLOW"))}


def _stop_group(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process group of ``process`` and wait for its leader; SIGKILL the group if it lingers."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)
        except ProcessLookupError:
            pass
    with contextlib.suppress(ProcessLookupError):  # children (LocalExecutor workers, trigger runner) may linger
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class EmulatorProcess:
    """``genmedia-emulator`` in its own process on a free port, controlled over HTTP."""

    log: Path
    api_key: str
    arguments: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the emulated vendors."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EmulatorProcess:
        """Start and wait until it answers."""
        command = [str(BIN / "genmedia-emulator"), "--port", str(self.port), "--api-key", self.api_key, *self.arguments]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._answers, 30, "the emulator")
        return self

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/_emulator/stats", timeout=2).ok
        except requests.RequestException:
            return False

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``."""
        response = requests.get(f"{self.url}/_emulator/stats", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def configure(self, **settings: Any) -> None:
        """``POST /_emulator/config``."""
        requests.post(f"{self.url}/_emulator/config", json=settings, timeout=10).raise_for_status()

    def reset(self) -> None:
        """Forget tasks and counts; restore the start-up settings."""
        requests.post(f"{self.url}/_emulator/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        """Stop the process."""
        if self.process is not None:
            _stop_group(self.process)


@dataclass
class Deployment:
    """A real Airflow deployment on loopback in ``root``; DAG files are copied from ``dag_sources``.

    ``env_connections=False`` leaves the vendor connections out of the environment, for a caller that stores them
    in the metadata database instead (where the UI lists them), as ``make up`` does.
    """

    root: Path
    dag_sources: Iterable[Path]
    emulator: EmulatorProcess
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env_connections: bool = True

    def __post_init__(self) -> None:
        self.home = self.root / "airflow-home"
        self.dags = self.root / "dags"
        self.logs = self.root / "component-logs"
        self.tmp = self.root / "tmp"
        for folder in (self.home, self.dags, self.logs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        for source in self.dag_sources:
            target = self.dags / source.name
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
        self.session = requests.Session()

    @property
    def url(self) -> str:
        """Base URL of the api-server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment every component runs with."""
        env = _clean_environment()
        env.update(
            AIRFLOW_HOME=str(self.home),
            TMPDIR=str(self.tmp),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            # A task's retries are its own: a first-try success is one (the default is 0 on 3.0 to 3.3 alike).
            AIRFLOW__CORE__DEFAULT_TASK_RETRIES="0",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__CORE__FERNET_KEY=self._secret("fernet_key", lambda: Fernet.generate_key().decode()),
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API_AUTH__JWT_SECRET=self._secret("jwt_secret", lambda: secrets.token_urlsafe(64)),
            # Unset, Airflow 3.0 signs tokens with an empty list as issuer, which PyJWT 2.15 refuses (HTTP 500).
            AIRFLOW__API_AUTH__JWT_ISSUER="genmedia-deployment",
            AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
            # A killed triggerer's triggers move to a live one once its heartbeat is this old (default 30 s).
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="2",
            AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD="8",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
            GENMEDIA_POLL_INTERVAL="1",
        )
        for conn_id, connection in self.vendor_connections().items() if self.env_connections else ():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
        env.update(self.extra_env)
        return env

    def vendor_connections(self) -> dict[str, dict[str, str]]:
        """The default vendor connections, by id, aimed at the emulator."""
        return {
            conn_id: {"conn_type": conn_type, "host": self.emulator.url, "password": self.emulator.api_key}
            for conn_id, conn_type in (("novita_default", "novita"), ("gptge_default", "gptge"))
        }

    def _secret(self, name: str, make: Callable[[], str]) -> str:
        path = self.root / f".{name}"
        if not path.exists():
            path.write_text(make())
        return path.read_text()

    # -- processes ----------------------------------------------------------------------------------------

    def airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        """One ``airflow`` CLI command with the deployment's environment (for set-up, not for watching runs)."""
        return subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=300, check=False
        )

    def start(self) -> Deployment:
        """Migrate the database, start the four components and wait until they report healthy."""
        migrated = self.airflow("db", "migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        for name in COMPONENTS:
            self.start_component(name)
        wait_until(self._healthy, HEALTH_TIMEOUT, "all four components to report healthy")
        return self

    def start_component(self, name: str, instance: str | None = None) -> subprocess.Popen[bytes]:
        """Start one component in its own process group; ``instance`` names a second copy (HA)."""
        key = instance or name
        command = [arg.format(port=self.port) for arg in COMPONENTS[name]]
        with (self.logs / f"{key}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(BIN / "airflow"), *command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes[key] = process
        return process

    def kill_component(self, key: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the component's whole process group (SIGKILL: no goodbye, as a lost machine)."""
        _stop_group(self.processes.pop(key), sig)

    def stop(self) -> None:
        """Stop every component it started, by PID, and close the REST session."""
        for key in reversed(list(self.processes)):
            _stop_group(self.processes.pop(key))
        self.session.close()

    def _healthy(self) -> bool:
        try:
            health = self.session.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all(health.get(part, {}).get("status") == "healthy" for part in parts)

    # -- REST API -----------------------------------------------------------------------------------------

    def request(self, method: str, path: str, timeout: float = 30, **kwargs: Any) -> requests.Response:
        """One HTTP request to the api-server, as an admin.

        Every visitor is an admin here, but Airflow 3.1 asks even them for a token (3.0, 3.2 and 3.3 make one up
        for each request): on a 401 this takes one from ``GET /auth/token``, as the UI does, and tries again.
        """
        response = self.session.request(method, f"{self.url}{path}", timeout=timeout, **kwargs)
        if response.status_code == 401:
            token = self.session.get(f"{self.url}/auth/token", timeout=10)
            token.raise_for_status()
            self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            response = self.session.request(method, f"{self.url}{path}", timeout=timeout, **kwargs)
        return response

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """One REST call under ``/api/v2``; raises on an HTTP error, returns the decoded body."""
        response = self.request(method, f"/api/v2{path}", **kwargs)
        assert response.ok, f"{method} {path}: HTTP {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    def wait_for_dags(self, *dag_ids: str, timeout: float = 90) -> None:
        """Wait until the dag-processor has parsed and serialized each DAG."""

        def parsed() -> bool:
            response = self.request("GET", "/api/v2/dags", params={"limit": 100}, timeout=10)
            known = {dag["dag_id"] for dag in response.json().get("dags", [])} if response.ok else set()
            return set(dag_ids) <= known

        wait_until(parsed, timeout, f"the DAGs {dag_ids} to be parsed")
        errors = self.api("GET", "/importErrors")
        assert errors["total_entries"] == 0, errors

    def unpause(self, *dag_ids: str) -> None:
        """Unpause DAGs (new DAGs start paused)."""
        for dag_id in dag_ids:
            self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a DAG run now; return its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of a DAG."""
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        """The state of one run."""
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 120) -> str:
        """Wait until the run ends; return ``success`` or ``failed``."""

        def ended() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in TERMINAL_RUN_STATES else None

        return wait_until(ended, timeout, f"{dag_id} run {run_id} to end", interval=1.0)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run (mapped ones included), as the REST API shows them."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return list(self.api("GET", path, params={"limit": 1000})["task_instances"])

    def states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], tuple[str, int]]:
        """``{(task_id, map_index): (state, try_number)}`` of a run."""
        return {
            (ti["task_id"], ti["map_index"]): (ti["state"], ti["try_number"])
            for ti in self.task_instances(dag_id, run_id)
        }

    def failure_report(self, dag_id: str, run_id: str) -> str:
        """The run's task states and the error lines of each unsuccessful task's logs, to tell why a run failed."""
        states = self.states(dag_id, run_id)
        failed = sorted({task for (task, _), (state, _) in states.items() if state not in ("success", "skipped")})
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        lines = [f"{dag_id} {run_id}: {states}"]
        for path in (path for task in failed for path in sorted(folder.glob(f"task_id={task}/**/*.log*"))):
            errors = [line for line in path.read_text(errors="replace").splitlines() if '"level":"error"' in line]
            lines += [f"--- {path.relative_to(folder)}", *(line[:2000] for line in errors[-3:])]
        return "\n".join(lines)

    def deferred(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances that wait in a triggerer right now."""
        return [ti for ti in self.task_instances(dag_id, run_id) if ti["state"] == "deferred"]

    # -- files --------------------------------------------------------------------------------------------

    def log_files(self) -> Iterator[Path]:
        """Every log file: task and trigger logs under AIRFLOW_HOME and the components' own output."""
        for folder in (self.home / "logs", self.logs):
            yield from (path for path in folder.rglob("*") if path.is_file())

    def trigger_logs(self, dag_id: str) -> str:
        """The text of every trigger log of a DAG's task instances."""
        folder = self.home / "logs" / f"dag_id={dag_id}"
        return "\n".join(path.read_text(errors="replace") for path in sorted(folder.rglob("*.log.trigger.*")))
