"""The local Airflow-on-loopback harness for trying DAGs against the emulator: a real Airflow deployment on
127.0.0.1, api-server, scheduler, dag-processor, triggerers (and workers) as separate processes.

`EmulatorProcess` runs ``genmedia-emulator`` as its own process, the way a vendor is another machine. `Deployment`
prepares a throwaway AIRFLOW_HOME (LocalExecutor, PostgreSQL in a throwaway cluster), starts each component in its own
process group, talks to it over the REST API, and stops every process it started by PID; the vendor connections aim at
the emulator and reach the components as ``AIRFLOW_CONN_*`` environment variables. `CeleryDeployment` is the same
mechanism in the shape production teams run: CeleryExecutor on Redis, two triggerers and two ``airflow celery worker``
processes, each worker and triggerer on a `Machine` of its own (no shared disk), media on a local S3 server.

It runs the ``airflow`` and ``genmedia-emulator`` commands installed next to this interpreter, so Airflow and the
provider are installed beside it; importing it needs only the ``stack`` extra. ``make up``, ``make demo`` and the
provider's deployment tests use it::

    with EmulatorProcess(log=Path("emulator.log")) as emulator, Deployment(
        root=Path("stack"), dag_sources=[Path("my_dags")], emulator=emulator
    ) as airflow:
        airflow.wait_for_dags("my_dag")
        airflow.unpause("my_dag")  # DAGs start paused
        run_id = airflow.trigger("my_dag", conf={"destination": "file:///tmp/published"})
        assert airflow.wait_for_run("my_dag", run_id) == "success", airflow.failure_report("my_dag", run_id)
        print(emulator.stats()["submits"])  # paid jobs per vendor API
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import psutil
import requests
from cryptography.fernet import Fernet
from packaging.version import Version

from genmedia_emulator.config import DEFAULT_API_KEY

BIN = Path(sys.executable).parent
HEALTH_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
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
#: The environment variable that names a component's `Machine`, read by `hostname`.
MACHINE_VARIABLE = "GENMEDIA_MACHINE"
#: The ``aws`` connection to the local S3 server that `CeleryDeployment` keeps the pay-once records with, and the
#: credentials the server takes (moto's server takes any).
S3_CONN_ID = "genmedia_test_s3"
S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION = "testing", "testing", "us-east-1"
T = TypeVar("T")


def hostname() -> str:
    """The host name a component reports, as Airflow's ``[core] hostname_callable``: the name of the `Machine` it
    stands for, else this machine's; so the REST API tells which worker ran each try and which triggerer holds a
    trigger, as on a deployment of many machines."""
    return os.environ.get(MACHINE_VARIABLE) or socket.getfqdn()


def s3_connection(endpoint: str) -> dict[str, Any]:
    """An ``aws`` connection to the S3 server at ``endpoint``."""
    return {
        "conn_type": "aws",
        "login": S3_ACCESS_KEY,
        "password": S3_SECRET_KEY,
        "extra": {"endpoint_url": endpoint, "region_name": S3_REGION},
    }


def aws_environment(endpoint: str) -> dict[str, str]:
    """The AWS SDK's environment variables that point it at the S3 server at ``endpoint``, for code that names no
    connection (as a machine with credentials of its own runs it)."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
    }


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


def _launch(command: list[str], log: Path, **options: Any) -> subprocess.Popen[bytes]:
    """Start ``command`` in a process group of its own, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **options
        )


def stop_process_group(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process group of ``process`` and wait for its leader; SIGKILL the group if it lingers, and every
    process it started that outlived it in a group of its own (Airflow 3.3 gives each task process one)."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
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
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


class LoopbackService(ABC):
    """Something the harness runs on 127.0.0.1; as a context manager, started on entry and stopped on exit (also when
    it fails to start)."""

    @abstractmethod
    def start(self) -> Self:
        """Start it and wait until it answers."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every process it started."""

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class ServerProcess(LoopbackService):
    """A server in a process group of its own on a free loopback ``port``, its output in ``log``, stopped by PID."""

    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop the server's process group."""
        if self.process is not None:
            stop_process_group(self.process)


@dataclass
class EmulatorProcess(ServerProcess):
    """``genmedia-emulator`` in its own process, controlled over HTTP; ``arguments`` are more of its command-line
    flags."""

    api_key: str = DEFAULT_API_KEY
    arguments: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the emulated vendors."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start and wait until it answers."""
        command = [str(BIN / "genmedia-emulator"), "--port", str(self.port), "--api-key", self.api_key, *self.arguments]
        self.process = _launch(command, self.log)
        wait_until(self._answers, 30, "the emulator")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"the emulator stopped at start-up (exit code {self.process.returncode}); see {self.log}"
            )
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


def install_debian_packages(*packages: str) -> None:
    """Install Debian packages with apt-get, as CI must on a bare machine (only root may)."""
    assert os.geteuid() == 0, f"install Debian's {' '.join(packages)} (apt-get needs root)"
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"


def debian_program(package: str, name: str) -> Path:
    """The program ``name`` of Debian's ``package``, installed first when missing. PostgreSQL's server programs are
    off PATH, under /usr/lib/postgresql/<version>/bin: the newest version's are taken."""

    def find() -> Path | None:
        versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda path: Version(path.parts[-3]))
        on_path = shutil.which(name)
        return versions[-1] if versions else Path(on_path) if on_path else None

    if (found := find()) is None:
        # Two test sessions side by side may both find it missing: one installs while the other waits (dpkg's own
        # lock would fail the second apt-get instead of waiting).
        with open(Path(tempfile.gettempdir()) / "genmedia-apt.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (found := find()) is None:
                install_debian_packages(package)
                found = find()
    assert found is not None, f"Debian's {package} installed no {name}"
    return found


@dataclass
class PostgresServer(ServerProcess):
    """PostgreSQL from Debian's packages in a throwaway cluster, run as the ``postgres`` user when this runs as root
    (the server refuses root). Clients are trusted: it listens on loopback. Nothing in it outlives the run, so it
    skips ``fsync``, as test clusters do."""

    user: str = "airflow"
    database: str = "airflow"
    folder: Path | None = None

    @property
    def url(self) -> str:
        """The database's SQLAlchemy URL, with psycopg2 (SQLAlchemy 2.1 takes psycopg 3 for a bare ``postgresql``)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> Self:
        """Make the cluster, start the server, wait until it answers and create the database."""
        self.programs = debian_program("postgresql", "initdb").parent
        # Not under pytest's temporary folder, which only root may enter: the server's own user must reach its files.
        self.folder = Path(tempfile.mkdtemp(prefix="genmedia-postgres-"))
        owner: dict[str, Any] = {}
        if os.geteuid() == 0:
            owner = {"user": "postgres", "group": "postgres", "extra_groups": []}
            shutil.chown(self.folder, "postgres", "postgres")
        cluster = self.folder / "cluster"
        initdb = [str(self.programs / "initdb"), "-D", str(cluster), "-U", self.user, "-A", "trust", "-E", "UTF8"]
        made = subprocess.run(
            initdb, cwd=self.folder, capture_output=True, text=True, timeout=120, check=False, **owner
        )
        assert made.returncode == 0, made.stdout + made.stderr
        server = [str(self.programs / "postgres"), "-D", str(cluster), "-p", str(self.port)]
        settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.folder), "fsync": "off"}
        server += [option for name, value in settings.items() for option in ("-c", f"{name}={value}")]
        self.process = _launch(server, self.log, cwd=self.folder, **owner)
        wait_until(self._answers, 60, "PostgreSQL")
        with contextlib.closing(self._connect("postgres")) as connection:
            connection.autocommit = True
            connection.cursor().execute(f'CREATE DATABASE "{self.database}"')
        return self

    def _connect(self, database: str) -> Any:
        import psycopg2  # Airflow's PostgreSQL driver: there whenever a deployment runs on PostgreSQL

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=database, connect_timeout=5)

    def _answers(self) -> bool:
        import psycopg2

        try:
            self._connect("postgres").close()
        except psycopg2.OperationalError:
            return False
        return True

    def dump(self) -> bytes:
        """``pg_dump`` of the database: every row, as SQL."""
        command = [str(self.programs / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]
        return subprocess.run([*command, self.database], capture_output=True, timeout=120, check=True).stdout

    def stop(self) -> None:
        """Stop the server (SIGINT: its fast shutdown) and delete the cluster."""
        if self.process is not None:
            stop_process_group(self.process, signal.SIGINT)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class RedisServer(ServerProcess):
    """Redis from Debian's ``redis-server``, keeping nothing on disk."""

    @property
    def url(self) -> str:
        """The URL of its database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        """Start it and wait until it answers."""
        program = str(debian_program("redis-server", "redis-server"))
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = _launch([program, *options, "--dir", str(self.log.parent)], self.log)
        wait_until(self._answers, 30, "Redis")
        return self

    def _answers(self) -> bool:
        import redis  # the Celery profile's own need: imported only when it runs

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False
        finally:
            client.close()


@dataclass(frozen=True)
class Machine:
    """A machine of its own for one component: an AIRFLOW_HOME (where its logs go), HOME, TMPDIR and working folder
    that no other component sees, and the host name it reports (see `hostname`)."""

    name: str
    root: Path

    def __post_init__(self) -> None:
        for folder in (self.airflow_home, self.home, self.tmp, self.work):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def airflow_home(self) -> Path:
        """Its AIRFLOW_HOME."""
        return self.root / "airflow-home"

    @property
    def home(self) -> Path:
        """Its HOME."""
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        """Its TMPDIR."""
        return self.root / "tmp"

    @property
    def work(self) -> Path:
        """The working folder its component starts in."""
        return self.root / "work"

    def env(self) -> dict[str, str]:
        """What its component's environment says about the machine."""
        return {
            "AIRFLOW_HOME": str(self.airflow_home),
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            MACHINE_VARIABLE: self.name,
        }


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
        process = _launch(
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


@dataclass(kw_only=True)
class CeleryDeployment(Deployment):
    """The deployment production teams run, on loopback: CeleryExecutor on Redis, PostgreSQL as the metadata database
    (both from Debian's packages), the api-server, scheduler, dag-processor, two triggerers and two
    ``airflow celery worker`` processes. Each triggerer and worker runs on a `Machine` of its own, so nothing a task
    leaves on its worker's disk is there for a task on the other.

    Object storage is the S3 server at ``s3_endpoint``, never ``file://``: published media (``s3://`` destinations,
    reached with the AWS credentials in the environment, as on machines given credentials of their own) and, below
    Airflow 3.3, the pay-once records, under `record_folder` with the ``aws`` connection ``S3_CONN_ID``, and the
    daily budgets' ledger, under `ledger_folder`.
    """

    s3_endpoint: str
    bucket: str
    triggerers: ClassVar[tuple[str, ...]] = ("triggerer", "triggerer-2")
    workers: ClassVar[tuple[str, ...]] = ("worker-1", "worker-2")

    def __post_init__(self) -> None:
        super().__post_init__()
        names = (*self.triggerers, *self.workers)
        self.machines = {name: Machine(name, self.root / "machines" / name) for name in names}
        self.redis = RedisServer(log=self.logs / "redis.log")
        import celery  # the Celery profile's own need: imported only when it runs

        self.celery_app = celery.Celery(broker=self.redis.url)

    @property
    def record_folder(self) -> str:
        """Where the pay-once records are kept below Airflow 3.3 (``[genmedia] submit_record_path``)."""
        return f"s3://{self.bucket}/submit-records"

    @property
    def ledger_folder(self) -> str:
        """Where the connections' daily budgets are counted (``[genmedia] spend_ledger_path``)."""
        return f"s3://{self.bucket}/spend-ledger"

    def profile_env(self) -> dict[str, str]:
        """CeleryExecutor on Redis and PostgreSQL; S3 for media and records; each component's host name its own."""
        assert self.database is not None, "the CeleryExecutor keeps its task results in PostgreSQL"
        return aws_environment(self.s3_endpoint) | {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.database.url}",
            # A worker that vanished fails its running tasks (to be retried elsewhere) once their heartbeat is this old
            # (default 300 s).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{hostname.__module__}.{hostname.__name__}",
            "AIRFLOW__GENMEDIA__SUBMIT_RECORD_PATH": self.record_folder,
            "AIRFLOW__GENMEDIA__SUBMIT_RECORD_CONN_ID": S3_CONN_ID,
            "AIRFLOW__GENMEDIA__SPEND_LEDGER_PATH": self.ledger_folder,
            "AIRFLOW__GENMEDIA__SPEND_LEDGER_CONN_ID": S3_CONN_ID,
            f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": json.dumps(s3_connection(self.s3_endpoint)),
        }

    def components(self) -> list[tuple[str, str]]:
        """The LocalExecutor profile's components, a second triggerer and the workers."""
        extra_triggerers = [("triggerer", name) for name in self.triggerers[1:]]
        return [*super().components(), *extra_triggerers, *(("celery-worker", name) for name in self.workers)]

    def machine(self, instance: str) -> Machine | None:
        """The machine of a triggerer or a worker."""
        return self.machines.get(instance)

    def start(self) -> Self:
        """Start Redis, then PostgreSQL and Airflow."""
        self.redis.start()
        return super().start()

    def stop(self) -> None:
        """Stop Airflow and PostgreSQL, then Redis."""
        try:
            super().stop()
        finally:
            self.celery_app.close()
            self.redis.stop()

    def _healthy(self) -> bool:
        return (
            super()._healthy()
            and self.live_triggerers() == set(self.triggerers)
            and self.ready_workers() == set(self.workers)
        )

    def live_triggerers(self) -> set[str]:
        """The triggerers whose heartbeat is recent, by machine."""
        params = {"job_type": "TriggererJob", "is_alive": True, "limit": 100}
        return {job["hostname"] for job in self.api("GET", "/jobs", params=params)["jobs"]}

    def ready_workers(self) -> set[str]:
        """The workers that answer a Celery ping, by machine."""
        replies = self.celery_app.control.ping(timeout=1.0)
        return {name.split("@")[0] for reply in replies for name in reply}
