"""A machine of its own for one component of a deployment, and the host name a component reports."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

#: The environment variable that names a component's `Machine`, read by `hostname`.
MACHINE_VARIABLE = "GENMEDIA_MACHINE"


def hostname() -> str:
    """The host name a component reports, as Airflow's ``[core] hostname_callable``: the name of the `Machine` it
    stands for, else this machine's; so the REST API tells which worker ran each try and which triggerer holds a
    trigger, as on a deployment of many machines."""
    return os.environ.get(MACHINE_VARIABLE) or socket.getfqdn()


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
