"""`Deployment`: a real Airflow deployment on loopback (LocalExecutor, PostgreSQL in a throwaway cluster), each
component in a process group of its own, driven over the REST API."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import requests
from cryptography.fernet import Fernet

from genmedia_stack.emulator import EmulatorProcess
from genmedia_stack.machines import Machine
from genmedia_stack.processes import BIN, LoopbackService, free_port, launch, stop_process_group, wait_until
from genmedia_stack.services import PostgresServer

HEALTH_TIMEOUT = 90.0
#: The ``airflow`` command of each component; a triggerer or a worker may run more than once, as ``{instance}``.
COMPONENTS = {
    "api-server": ["api-server", "-H", "127.0.0.1", "-p", "{port}", "-w", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
    # Its log server would take the same port as the other worker's: the tests read the task logs off its disk.
    "celery-worker": ["celery", "worker", "--skip-serve-logs", "--celery-hostname", "{instance}@%h"],
}
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


def _clean_environment() -> dict[str, str]:
    """This process's environment without the test run's own Airflow settings and connections."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "_AIRFLOW"))}


@dataclass
class Deployment(LoopbackService):
    """A real Airflow deployment on loopback in ``root``; DAG files are copied from ``dag_sources``.

    Its metadata database is PostgreSQL (`PostgresServer`), as in production: on SQLite, one writer at a time, a
    scheduler busy past SQLite's 5 s lock wait makes the api-server answer HTTP 500 ("database is locked").
    ``postgres=False`` keeps SQLite in AIRFLOW_HOME, for a caller that only runs ``airflow dags test`` in one process,
    as ``make demo`` does. ``env_connections=False`` leaves the vendor connections out of the environment, for a caller
    that stores them in the metadata database instead (where the UI lists them), as ``make up`` does.
    """

    root: Path
    dag_sources: Iterable[Path]
    emulator: EmulatorProcess
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env_connections: bool = True
    postgres: bool = True
    #: Triggerers run besides the first (``triggerer-2``, ...), sharing its AIRFLOW_HOME: triggers spread over them.
    extra_triggerers: int = 0

    def __post_init__(self) -> None:
        self.home = self.root / "airflow-home"
        self.dags = self.root / "dags"
        self.logs = self.root / "component-logs"
        self.tmp = self.root / "tmp"
        for folder in (self.home, self.dags, self.logs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.database = PostgresServer(log=self.logs / "postgres.log") if self.postgres else None
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
            # A killed triggerer's triggers move to a live one once its heartbeat is this old (default 30 s). Not less:
            # with make test's three sessions on two cores a live triggerer's heartbeat can lag 8 s, and its triggers
            # then move while it still runs them (two events for one task).
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="2",
            AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD="15",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
            GENMEDIA_POLL_INTERVAL="1",
        )
        if self.database is not None:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.database.url
        env.update(self.profile_env())
        for conn_id, connection in self.vendor_connections().items() if self.env_connections else ():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
        env.update(self.extra_env)
        return env

    def profile_env(self) -> dict[str, str]:
        """What this profile sets on top of the common settings: the executor and what it needs."""
        return {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4"}

    def components(self) -> list[tuple[str, str]]:
        """``(component, instance)`` of every process `start` runs, in start order."""
        extra = [("triggerer", f"triggerer-{number}") for number in range(2, self.extra_triggerers + 2)]
        return [(name, name) for name in ("api-server", "scheduler", "dag-processor", "triggerer")] + extra

    def machine(self, instance: str) -> Machine | None:
        """The machine of its own that ``instance`` runs on; None: it shares the deployment's AIRFLOW_HOME."""
        return None

    def component_env(self, instance: str) -> dict[str, str]:
        """The environment of one component: the deployment's, with its machine's folders where it has one."""
        machine = self.machine(instance)
        return self.env | (machine.env() if machine else {})

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

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """One ``airflow`` CLI command with the deployment's environment, its output and errors together in
        ``stdout`` (for set-up or ``airflow dags test``, not for watching runs)."""
        return subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> Self:
        """Start PostgreSQL, migrate the database, start the components and wait until they report healthy."""
        if self.database is not None:
            self.database.start()
        migrated = self.airflow("db", "migrate")
        assert migrated.returncode == 0, migrated.stdout
        for name, instance in self.components():
            self.start_component(name, instance)
        self.wait_until_healthy()
        return self

    def wait_until_healthy(self) -> None:
        """Wait until every component reports healthy."""
        wait_until(self._healthy, HEALTH_TIMEOUT, "every component to report healthy")

    def start_component(self, name: str, instance: str | None = None) -> subprocess.Popen[bytes]:
        """Start one component in its own process group; ``instance`` names a second copy (HA)."""
        key = instance or name
        command = [arg.format(port=self.port, instance=key) for arg in COMPONENTS[name]]
        machine = self.machine(key)
        process = launch(
            [str(BIN / "airflow"), *command],
            self.logs / f"{key}.log",
            env=self.component_env(key),
            cwd=machine.work if machine else None,
        )
        self.processes[key] = process
        return process

    def kill_component(self, key: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the component's whole process group (SIGKILL: no goodbye, as a lost machine)."""
        stop_process_group(self.processes.pop(key), sig)

    def stop(self) -> None:
        """Stop every component it started, by PID, then PostgreSQL, and close the REST session."""
        try:
            for key in reversed(list(self.processes)):
                stop_process_group(self.processes.pop(key))
        finally:
            if self.database is not None:
                self.database.stop()
            self.session.close()

    def all_processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """Every process it started and still runs, by name: PostgreSQL's server, then the components."""
        database = self.database.process if self.database is not None else None
        return ({"postgres": database} if database is not None else {}) | self.processes

    def metadata_dump(self) -> bytes:
        """Every row of the metadata database: ``pg_dump``'s SQL, or the SQLite file's bytes."""
        return self.database.dump() if self.database is not None else (self.home / "airflow.db").read_bytes()

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
        """One REST call under ``/api/v2``; raises on an HTTP error (with the api-server's last lines on a 5xx, where
        its traceback is), returns the decoded body."""
        response = self.request(method, f"/api/v2{path}", **kwargs)
        if not response.ok:
            error = f"{method} {path}: HTTP {response.status_code} {response.text[:500]}"
            server_log = self.logs / "api-server.log"
            tail = server_log.read_text(errors="replace").splitlines()[-60:] if response.status_code >= 500 else []
            raise AssertionError("\n".join([error, *tail]))
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

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        """Start a DAG run now (for ``logical_date``, e.g. the one its schedule is due for); return its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf or {}})
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
        lines = [f"{dag_id} {run_id}: {states}"]
        for folder in (logs / f"dag_id={dag_id}" / f"run_id={run_id}" for logs in self.task_log_folders()):
            for path in (path for task in failed for path in sorted(folder.glob(f"task_id={task}/**/*.log*"))):
                errors = [line for line in path.read_text(errors="replace").splitlines() if '"level":"error"' in line]
                lines += [f"--- {path.relative_to(self.root)}", *(line[:2000] for line in errors[-3:])]
        return "\n".join(lines)

    def deferred(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances that wait in a triggerer right now."""
        return [ti for ti in self.task_instances(dag_id, run_id) if ti["state"] == "deferred"]

    # -- files --------------------------------------------------------------------------------------------

    def task_log_folders(self) -> list[Path]:
        """Where task and trigger logs are written: the logs folder of every AIRFLOW_HOME, each machine's too."""
        machines = (self.machine(instance) for _, instance in self.components())
        return [self.home / "logs", *(machine.airflow_home / "logs" for machine in machines if machine)]

    def log_files(self) -> Iterator[Path]:
        """Every log file: task and trigger logs under each AIRFLOW_HOME and the components' own output."""
        for folder in (*self.task_log_folders(), self.logs):
            yield from (path for path in folder.rglob("*") if path.is_file())

    def task_logs(self, dag_id: str, pattern: str) -> list[Path]:
        """The log files of a DAG's task instances whose path under ``dag_id=...`` matches ``pattern``, on every
        machine (e.g. ``task_id=jimeng/attempt=2.log``, ``**/*.log.trigger.*``)."""
        folders = (logs / f"dag_id={dag_id}" for logs in self.task_log_folders())
        return sorted(path for folder in folders for path in folder.rglob(pattern))

    def trigger_logs(self, dag_id: str) -> str:
        """The text of every trigger log of a DAG's task instances."""
        return "\n".join(path.read_text(errors="replace") for path in self.task_logs(dag_id, "*.log.trigger.*"))
