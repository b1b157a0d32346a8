"""The CeleryExecutor profile of the local deployment: the shape production teams run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar, Self

from genmedia_stack.deployment import Deployment
from genmedia_stack.machines import Machine, hostname
from genmedia_stack.s3 import S3_CONN_ID, aws_environment, s3_connection
from genmedia_stack.services import RedisServer


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
