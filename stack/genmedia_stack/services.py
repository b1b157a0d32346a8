"""PostgreSQL and Redis from Debian's packages (installed with apt-get when missing), each on loopback in a process
group of its own."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from packaging.version import Version

from genmedia_stack.processes import ServerProcess, launch, stop_process_group, wait_until


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
        self.process = launch(server, self.log, cwd=self.folder, **owner)
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
        self.process = launch([program, *options, "--dir", str(self.log.parent)], self.log)
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
