"""The local Airflow-on-loopback harness for trying DAGs against the emulator: a real Airflow deployment on
127.0.0.1, api-server, scheduler, dag-processor, triggerers (and workers) as separate processes.

`EmulatorProcess` runs ``genmedia-emulator`` as its own process, the way a vendor is another machine. `Deployment`
prepares a throwaway AIRFLOW_HOME (LocalExecutor, PostgreSQL in a throwaway cluster), starts each component in its own
process group, talks to it over the REST API, and stops every process it started by PID; the vendor connections aim at
the emulator and reach the components as ``AIRFLOW_CONN_*`` environment variables. `CeleryDeployment` is the same
mechanism in the shape production teams run: CeleryExecutor on Redis, two triggerers and two ``airflow celery worker``
processes, each worker and triggerer on a `Machine` of its own (no shared disk), media on a local S3 server.

It runs the ``airflow`` and ``genmedia-emulator`` commands installed next to this interpreter, so Airflow and the
provider are installed beside it (importing it needs neither). A development tool of airflow-provider-genmedia,
not published: ``make up``, ``make demo`` and the provider's deployment tests use it::

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

from genmedia_stack.celery_deployment import CeleryDeployment
from genmedia_stack.deployment import Deployment
from genmedia_stack.emulator import EmulatorProcess
from genmedia_stack.processes import BIN, free_port, stop_process_group, wait_until
from genmedia_stack.s3 import S3_ACCESS_KEY, S3_CONN_ID, S3_REGION, S3_SECRET_KEY, s3_connection

__version__ = "0.1.0"

__all__ = [
    "BIN",
    "S3_ACCESS_KEY",
    "S3_CONN_ID",
    "S3_REGION",
    "S3_SECRET_KEY",
    "CeleryDeployment",
    "Deployment",
    "EmulatorProcess",
    "free_port",
    "s3_connection",
    "stop_process_group",
    "wait_until",
]
