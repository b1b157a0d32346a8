"""Daily budgets per connection, enforced before every paid submit on every worker and machine.

A connection's extras ``max_jobs_per_day`` and ``max_outputs_per_day`` cap the submits that may make a job, and the
images or videos they ask for, per UTC day. Each unit of a budget is one object in a shared folder (the ledger):
``<ledger>/<conn_id>/<YYYY-MM-DD>/<jobs|outputs>/<slot>.json`` with ``slot`` in ``1..limit``. A submit takes its
units by creating their objects only if absent (an ``O_EXCL`` file on local disk, an ``If-None-Match: *`` PUT on
S3), so that N workers racing for the last unit make exactly one winner without a lock server, and no day ever
holds more objects than its limit. A submit the vendor proved it refused deletes its objects: the units go back.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from airflow.sdk import ObjectStoragePath
from fsspec.implementations.local import LocalFileSystem

from airflow_provider_genmedia.exceptions import GenMediaBudgetExceededError, GenMediaValidationError
from airflow_provider_genmedia.shared_storage import shared_folder

log = logging.getLogger(__name__)

LEDGER_PATH_OPTION = "spend_ledger_path"
LEDGER_CONN_OPTION = "spend_ledger_conn_id"
#: Object stores whose file system creates an object only if absent, atomically (s3fs: ``If-None-Match: *``).
EXCLUSIVE_CREATE_PROTOCOLS = frozenset({"file", "local", "s3", "s3a"})
#: Rounds of list-then-create a submit tries before it gives up on a ledger that other writers keep changing.
MAX_ROUNDS = 20
Unit = Literal["jobs", "outputs"]
EXTRA_OF: dict[Unit, str] = {"jobs": "max_jobs_per_day", "outputs": "max_outputs_per_day"}


@dataclass(frozen=True)
class DailyBudget:
    """The daily limits of one connection; None where the connection sets none."""

    max_jobs: int | None = None
    max_outputs: int | None = None

    @property
    def limited(self) -> bool:
        """True when the connection sets any budget."""
        return self.max_jobs is not None or self.max_outputs is not None

    def limits(self, outputs: int) -> list[tuple[Unit, int, int]]:
        """Each budget a submit asking for ``outputs`` draws on: its unit, its limit and the units it takes."""
        wanted: list[tuple[Unit, int | None, int]] = [
            ("jobs", self.max_jobs, 1),
            ("outputs", self.max_outputs, outputs),
        ]
        return [(unit, limit, count) for unit, limit, count in wanted if limit is not None]


@dataclass(frozen=True)
class Reservation:
    """The ledger objects one submit took."""

    objects: tuple[ObjectStoragePath, ...]

    def release(self) -> None:
        """Delete the objects: the submit was proven refused, so its units are free again."""
        for unit in self.objects:
            unit.unlink(missing_ok=True)


class SpendLedger:
    """The daily units of every connection, as create-if-absent objects under ``root``.

    :param root: The ledger folder; every worker of the deployment must reach the same one.
    :param clock: The current time (UTC); the day of a unit is the UTC date at which it was taken.
    """

    def __init__(self, root: ObjectStoragePath, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        protocol = getattr(root, "protocol", "file") or "file"
        if protocol not in EXCLUSIVE_CREATE_PROTOCOLS:
            raise GenMediaValidationError(
                f"[genmedia] {LEDGER_PATH_OPTION}",
                f"{protocol}:// cannot create an object only if it is absent, which budgets need so that two "
                "workers never take the same unit; use s3:// (or file:// with LocalExecutor); nothing was sent",
            )
        self.root = root
        self.clock = clock
        self._local = isinstance(root.fs, LocalFileSystem)

    @classmethod
    def configured(cls) -> SpendLedger:
        """The ledger at ``[genmedia] spend_ledger_path`` (default: under ``$AIRFLOW_HOME`` with LocalExecutor)."""
        return cls(
            shared_folder(
                LEDGER_PATH_OPTION,
                LEDGER_CONN_OPTION,
                "spend-ledger",
                "a budget on the connection counts every submit of every worker in one ledger",
            )
        )

    def take(self, conn_id: str, budget: DailyBudget, outputs: int, owner: dict[str, Any]) -> Reservation:
        """Take one job unit and ``outputs`` output units of today for a submit on ``conn_id``; a budget that has
        too few left raises `GenMediaBudgetExceededError`, and nothing is taken."""
        day = self.clock().astimezone(UTC).date().isoformat()
        content = json.dumps({**owner, "taken_at": self.clock().isoformat(), "host": socket.gethostname()}).encode()
        taken: list[ObjectStoragePath] = []
        try:
            for unit, limit, count in budget.limits(outputs):
                units, others = self._take_units(
                    self.root / quote(conn_id, safe="") / day / unit, limit, count, content
                )
                taken += units
                if len(units) < count:
                    raise budget_exceeded(conn_id, unit, limit, day, others, asked=count)
        except BaseException:
            Reservation(tuple(taken)).release()
            raise
        return Reservation(tuple(taken))

    def used(self, conn_id: str, unit: Unit, day: str) -> int:
        """How many units of ``unit`` ``conn_id`` holds on ``day`` (``YYYY-MM-DD``)."""
        return len(self._slots(self.root / quote(conn_id, safe="") / day / unit))

    def _take_units(
        self, folder: ObjectStoragePath, limit: int, count: int, content: bytes
    ) -> tuple[list[ObjectStoragePath], int]:
        """Create ``count`` free slot objects of ``1..limit`` under ``folder``: list the slots, try the free ones in
        order, and list again when racing writers took them first. Returns the objects created (fewer than
        ``count`` when too few are free) and how many other submits hold."""
        taken: list[ObjectStoragePath] = []
        for _ in range(MAX_ROUNDS):
            used = self._slots(folder)
            others = len(used) - len(taken)
            if limit - len(used) + len(taken) < count:
                return taken, others
            for slot in (slot for slot in range(1, limit + 1) if slot not in used):
                path = folder / f"{slot:06d}.json"
                if self._create(path, content):
                    taken.append(path)
                    if len(taken) == count:
                        return taken, others
        raise GenMediaBudgetExceededError(
            f"could not take a unit of the ledger at {folder} in {MAX_ROUNDS} rounds: other submits kept taking "
            "the free ones first; nothing was sent"
        )

    def _slots(self, folder: ObjectStoragePath) -> set[int]:
        """The slot numbers taken under ``folder``."""
        if self._local:
            try:
                names: Iterable[str] = os.listdir(folder.path)
            except FileNotFoundError:
                return set()
        else:
            folder.fs.invalidate_cache(folder.path)
            try:
                names = (entry.rsplit("/", 1)[-1] for entry in folder.fs.ls(folder.path, detail=False))
            except FileNotFoundError:
                return set()
        return {int(name[:-5]) for name in names if name.endswith(".json") and name[:-5].isdigit()}

    def _create(self, path: ObjectStoragePath, content: bytes) -> bool:
        """Create ``path`` holding ``content`` only if it does not exist; False when it did."""
        if self._local:
            os.makedirs(os.path.dirname(path.path), exist_ok=True)
            try:
                descriptor = os.open(path.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
            return True
        try:
            path.fs.pipe_file(path.path, content, mode="create")
        except FileExistsError:
            return False
        except OSError as error:
            # S3 answers 409 ConditionalRequestConflict to a conditional PUT racing another: the slot may be gone.
            if "ConditionalRequestConflict" in str(error):
                return False
            raise GenMediaValidationError(
                f"[genmedia] {LEDGER_PATH_OPTION}",
                f"cannot write the spend ledger at {path}: {error}; nothing was sent",
            ) from error
        return True


def budget_exceeded(
    conn_id: str, unit: Unit, limit: int, day: str, used: int, *, asked: int
) -> GenMediaBudgetExceededError:
    """The error of a submit over budget: the connection, the budget, the day, the count and how to raise it."""
    extra = EXTRA_OF[unit]
    asking = f"; this submit asks for {asked}" if unit == "outputs" else ""
    return GenMediaBudgetExceededError(
        f"connection {conn_id!r} is over its budget: {extra}={limit}, and {used} {unit} were already counted on "
        f"{day} (UTC){asking}. Nothing was sent. To allow more, raise the extra {extra} of connection {conn_id!r}, "
        "or run again after 00:00 UTC"
    )
