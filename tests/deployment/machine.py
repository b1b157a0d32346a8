"""The host name a component of a test deployment reports, as Airflow's ``[core] hostname_callable``: the name of the
machine it stands for (`MACHINE_VARIABLE`), so that the REST API tells which worker ran each try of a task and which
triggerer holds a trigger, as it would on a deployment of many machines."""

from __future__ import annotations

import os
import socket

MACHINE_VARIABLE = "GENMEDIA_MACHINE"


def hostname() -> str:
    """The name of the component's machine, else this machine's."""
    return os.environ.get(MACHINE_VARIABLE) or socket.getfqdn()
