"""Processes on loopback: a free port, waiting on a condition, starting a command in a process group of its own and
stopping that group by PID, and the base classes of what the harness runs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import psutil

#: Where the ``airflow`` and ``genmedia-emulator`` commands are: next to this interpreter.
BIN = Path(sys.executable).parent
STOP_TIMEOUT = 20.0
T = TypeVar("T")


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


def launch(command: list[str], log: Path, **options: Any) -> subprocess.Popen[bytes]:
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
