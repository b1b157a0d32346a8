"""Paying once per Airflow task: the record of a vendor submit that every try of the task shares, where it is kept,
and the rule that reads it.

A vendor job costs money. Before a submit is sent, the attempt (API, request fingerprint, time) is recorded; the
vendor task id is added right after the answer. A later try of the same Airflow task (a retry, a worker that died, a
deadline that passed) resumes that task instead of paying again: it waits for it while it runs, returns it once it
succeeded, and submits a new job only when the recorded one failed, was canceled or expired. An attempt without a
task id was sent but never answered in a way that proves whether a job exists (no answer, a gateway's 502/504, a
worker killed mid-request): the try then fails without retry and says what to check, unless the operator's
``on_uncertain_submit="resubmit"`` accepts paying twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from airflow.sdk import ObjectStoragePath
from fsspec.implementations.local import LocalFileSystem
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from airflow_provider_genmedia.apis.base import Submission
from airflow_provider_genmedia.exceptions import (
    GenMediaNotFoundError,
    GenMediaUncertainSubmitError,
    GenMediaValidationError,
    job_may_exist,
)
from airflow_provider_genmedia.metrics import CREATED, RESUMED, UNCERTAIN, count_submit, submit_outcome
from airflow_provider_genmedia.outcomes import UncertainSubmitPolicy
from airflow_provider_genmedia.results import GenerationResult, TaskStatus, elide_blobs
from airflow_provider_genmedia.shared_storage import shared_folder

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

    from airflow_provider_genmedia.hooks.genmedia import TaskClient

log = logging.getLogger(__name__)

#: The ``task_state_store`` key of the record (all tries of one task share it).
STATE_KEY = "genmedia_task"
#: Where records are kept without ``task_state_store`` (Airflow < 3.3): ``[genmedia]`` options of that name.
RECORD_PATH_OPTION = "submit_record_path"
RECORD_CONN_OPTION = "submit_record_conn_id"
#: The version of `SubmitRecord` this code writes; records without one were written before it had a version.
RECORD_VERSION = 1
#: Vendor states in which a recorded task can still serve its request.
RESUMABLE_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.QUEUED, TaskStatus.RUNNING})


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """A stable digest of a submit body, to tell whether a recorded task was made from the same request."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class SubmitRecord(BaseModel):
    """One submit of an Airflow task: sent at ``attempted_at``, answered with ``task_id`` (None until the vendor's
    answer proved that a job exists)."""

    model_config = ConfigDict(frozen=True)

    version: int = RECORD_VERSION
    api: str
    task_id: str | None = None
    fingerprint: str
    attempted_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    #: What was submitted, base64 elided: its prompt and model go into the result.
    request: dict[str, Any] | None = None

    @property
    def sent_at(self) -> str:
        """``attempted_at`` in UTC, as the record's JSON holds it."""
        return self.attempted_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @classmethod
    def attempt(cls, submission: Submission) -> SubmitRecord:
        """The record of ``submission`` about to be sent."""
        return cls(
            api=submission.api.name,
            fingerprint=request_fingerprint(submission.body),
            request=elide_blobs(submission.body),
        )


class SubmitRecordStore(ABC):
    """Where the submit record of one Airflow task is kept across its tries, workers and machines."""

    @abstractmethod
    def get(self) -> SubmitRecord | None:
        """The record, or None when there is none (or it cannot be read)."""

    @abstractmethod
    def record_attempt(self, record: SubmitRecord) -> None:
        """Keep ``record`` before its submit is sent."""

    def record_task_id(self, record: SubmitRecord, task_id: str) -> SubmitRecord:
        """Add the vendor's task id to the attempt ``record``, once the vendor answered with it."""
        answered = record.model_copy(update={"task_id": task_id})
        self.record_attempt(answered)
        return answered

    @abstractmethod
    def forget(self) -> None:
        """Drop the record: the vendor's answer proved that its submit created no job."""


class StateStore(Protocol):
    """Airflow's ``task_state_store`` (3.3+): JSON values by key, shared by every try of the task."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``."""

    def set(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key``."""

    def delete(self, key: str) -> None:
        """Drop ``key``."""


def read_record(value: Any, where: str) -> SubmitRecord | None:
    """The record in a stored JSON value; a value that is no record (another writer's, a newer version's) counts as
    none, with a warning naming ``where`` it was found."""
    try:
        record = SubmitRecord.model_validate(value)
    except ValidationError as error:
        log.warning("%s holds no readable submit record: %s", where, error)
        return None
    if record.version > RECORD_VERSION:
        log.warning("%s was written by a newer provider (record version %d): ignored", where, record.version)
        return None
    return record


class TaskStateRecordStore(SubmitRecordStore):
    """The record in Airflow's ``task_state_store`` (3.3+) under `STATE_KEY`."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self) -> SubmitRecord | None:
        """The record, or None."""
        value = self.store.get(STATE_KEY)
        return None if value is None else read_record(value, f"task_state_store[{STATE_KEY!r}]")

    def record_attempt(self, record: SubmitRecord) -> None:
        """Write the record as JSON."""
        self.store.set(STATE_KEY, record.model_dump(mode="json"))

    def forget(self) -> None:
        """Delete the record."""
        self.store.delete(STATE_KEY)


class ObjectStorageRecordStore(SubmitRecordStore):
    """The record as a JSON file in object storage (Airflow < 3.3, which has no ``task_state_store``): one file per
    task instance, ``<dag_id>/<run_id>/<task_id>/<map_index>.json`` under ``[genmedia] submit_record_path``. Every
    try of the task, on any worker, reads the same file; it is replaced whole, never seen half-written."""

    def __init__(self, path: ObjectStoragePath) -> None:
        self.path = path

    @classmethod
    def for_task(cls, folder: ObjectStoragePath, ti: Any) -> ObjectStorageRecordStore:
        """The store of task instance ``ti`` under ``folder`` (names quoted: a run id may hold any character)."""
        parts = [quote(str(part), safe="") for part in (ti.dag_id, ti.run_id, ti.task_id)]
        return cls(folder.joinpath(*parts, f"{ti.map_index}.json"))

    def get(self) -> SubmitRecord | None:
        """The record, or None."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        return read_record(value, str(self.path))

    def record_attempt(self, record: SubmitRecord) -> None:
        """Replace the file at once: one upload on an object store, a rename on a local disk. A store that cannot be
        written fails here, before anything is sent."""
        content = record.model_dump_json().encode()
        try:
            if isinstance(self.path.fs, LocalFileSystem):
                folder = Path(self.path.path).parent
                folder.mkdir(parents=True, exist_ok=True)
                staging = folder / f".{Path(self.path.path).name}.{uuid.uuid4().hex}"
                staging.write_bytes(content)
                os.replace(staging, self.path.path)
            else:
                self.path.fs.pipe_file(self.path.path, content)
        except OSError as error:
            raise GenMediaValidationError(
                f"[genmedia] {RECORD_PATH_OPTION}",
                f"cannot keep the submit record at {self.path}: {error}. Point it at storage every worker can "
                "write; nothing was sent",
            ) from error

    def forget(self) -> None:
        """Delete the file."""
        self.path.unlink(missing_ok=True)


def record_folder() -> ObjectStoragePath:
    """Where `ObjectStorageRecordStore` keeps records: ``[genmedia] submit_record_path`` (with the connection
    ``submit_record_conn_id``), by default a folder under ``$AIRFLOW_HOME`` on this machine, which only executors that
    run every task on one machine may use."""
    return shared_folder(
        RECORD_PATH_OPTION,
        RECORD_CONN_OPTION,
        "submit-records",
        "this Airflow has no task_state_store, so the provider keeps each submit's record itself",
    )


def record_store(context: Mapping[str, Any]) -> SubmitRecordStore:
    """The record store of the running task: its ``task_state_store`` where Airflow has one (3.3+), else a file of
    its own in object storage (`record_folder`)."""
    store = context.get("task_state_store")
    if store is not None:
        return TaskStateRecordStore(store)
    return ObjectStorageRecordStore.for_task(record_folder(), context["ti"])


class PayOnce:
    """Submit a job at most once per Airflow task: resume the recorded vendor task where it can serve the request,
    else record the attempt, send the submit once and record the task id it returned.

    :param client: The client of the submission's API on its connection.
    :param records: Where the task's record is kept.
    :param on_uncertain_submit: What a try does about an earlier submit whose answer never proved whether a job was
        created: ``"fail"`` without retry, or ``"resubmit"`` and perhaps pay twice.
    """

    def __init__(
        self,
        client: TaskClient,
        records: SubmitRecordStore,
        on_uncertain_submit: UncertainSubmitPolicy,
        logger: logging.Logger | Logger = log,
    ) -> None:
        self.client = client
        self.records = records
        self.on_uncertain_submit = on_uncertain_submit
        self.log = logger

    def submit(self, submission: Submission) -> tuple[str, GenerationResult | None]:
        """The vendor task serving ``submission`` and its state when a recorded one was resumed (None after a new
        submit)."""
        resumed = self._resume(submission)
        if resumed is not None:
            count_submit(submission.api.name, RESUMED)
            return resumed
        return self._send(submission), None

    def _resume(self, submission: Submission) -> tuple[str, GenerationResult] | None:
        """The recorded task and its state when it can still serve ``submission``; None to submit."""
        record = self.records.get()
        name = submission.api.name
        if record is None or record.api != name:
            return None
        if record.fingerprint != request_fingerprint(submission.body):
            self.log.warning("The request changed since the earlier %s submit: submitting anew", name)
            return None
        if record.task_id is None:
            if self.on_uncertain_submit == "fail":
                count_submit(name, UNCERTAIN)
                cause = "an earlier try sent it and got no answer that says whether a job was created"
                raise GenMediaUncertainSubmitError(name, submission.path, cause, sent_at=record.sent_at)
            self.log.warning(
                "An earlier %s submit at %s may have created a job; submitting again as on_uncertain_submit="
                "'resubmit' asks (this may pay twice)",
                name,
                record.sent_at,
            )
            return None
        try:
            result = self.client.get_result(record.task_id)
        except GenMediaNotFoundError:
            self.log.warning("%s no longer knows task %s: submitting anew", name, record.task_id)
            return None
        if result.status in RESUMABLE_STATUSES:
            self.log.info(
                "Resuming %s task %s (%s) from an earlier try: no new job", name, record.task_id, result.status
            )
            return record.task_id, result
        self.log.warning(
            "Earlier %s task %s ended %s (%s): submitting anew", name, record.task_id, result.status, result.reason
        )
        return None

    def _send(self, submission: Submission) -> str:
        """Record the attempt, send the submit once, and record the vendor task id it returned.

        Whatever goes wrong, the record is forgotten only when the error proves that no job was made
        (`job_may_exist`); otherwise it stays, and the next try resumes the job or reports an uncertain submit.
        """
        attempt = SubmitRecord.attempt(submission)
        self.records.record_attempt(attempt)
        try:
            task_id = self.client.submit(submission)
        except BaseException as error:
            count_submit(submission.api.name, submit_outcome(error))
            if not job_may_exist(error):
                self.records.forget()
            elif isinstance(error, GenMediaUncertainSubmitError):
                sent_at = attempt.sent_at
                raise GenMediaUncertainSubmitError(error.api, error.path, error.cause, sent_at=sent_at) from None
            raise
        count_submit(submission.api.name, CREATED)
        self.records.record_task_id(attempt, task_id)
        return task_id
