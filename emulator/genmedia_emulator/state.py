"""The one mechanism behind all four APIs: tasks and their lifecycle, signed URLs, faults and counters."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from genmedia_emulator.config import DEFAULT_BALANCE, FAULTS, HOSTS, POLL_OUTAGE, EmulatorConfig, FaultCounter
from genmedia_emulator.media import MediaSpec

#: Share of a task's duration spent queued before it runs.
QUEUE_SHARE = 0.2


class Phase(StrEnum):
    """Where an emulated task stands, in the stats' words: queued, running, then the outcome drawn at its submit.
    Each vendor renderer words it in its own status field."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True once the task has reached its outcome."""
        return self not in (Phase.QUEUED, Phase.RUNNING)


@dataclass(frozen=True)
class Plan:
    """What a submit asks for, as its API's renderer reads it: the text searched for markers, the files, the seed."""

    prompt: str
    files: dict[str, MediaSpec]
    seed: int | None = None
    #: The images or videos the job makes, which it is charged for (None: one per file).
    outputs: int | None = None

    @property
    def output_count(self) -> int:
        """How many images or videos the job makes."""
        return len(self.files) if self.outputs is None else self.outputs

    @property
    def video(self) -> bool:
        """True when the task makes videos (it then takes ``video_seconds``)."""
        return any(spec.kind == "video" for spec in self.files.values())


@dataclass
class Task:
    """One emulated vendor task: what it makes, when, and how it ends."""

    id: str
    api: str
    path: str
    body: dict[str, Any]
    plan: Plan
    outcome: Phase
    nsfw_flagged: bool
    submitted_at: float
    duration: float
    polls: int = 0
    downloads: int = 0
    #: The output links, signed once when a poll first sees the task succeeded (``url_signing`` ``once``).
    links: dict[str, str] | None = None
    rendered: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def started_at(self) -> float:
        """When the task left the queue."""
        return self.submitted_at + QUEUE_SHARE * self.duration

    @property
    def finished_at(self) -> float:
        """When the task reaches its outcome."""
        return self.submitted_at + self.duration

    def status(self, now: float) -> Phase:
        """Queued, running, then the outcome chosen at submit."""
        if now >= self.finished_at:
            return self.outcome
        return Phase.RUNNING if now >= self.started_at else Phase.QUEUED

    def progress(self, now: float) -> int:
        """Percent of the running phase done (0 while queued, 100 at the end)."""
        running = self.finished_at - self.started_at
        if now >= self.finished_at or running <= 0:
            return 100
        return max(0, int(100 * (now - self.started_at) / running))

    def eta(self, now: float) -> int:
        """Seconds left until the end, rounded up."""
        return max(0, math.ceil(self.finished_at - now))


class UrlSigner:
    """Presigned download links: an HMAC over path and expiry, like S3 and OSS query-string auth."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _signature(self, path: str, expires: int) -> str:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, path: str, expires: int) -> str:
        """``path`` with its ``Expires`` and ``Signature`` query."""
        return f"{path}?Expires={expires}&Signature={self._signature(path, expires)}"

    def refusal(self, path: str, expires: str, signature: str, now: float) -> tuple[str, str] | None:
        """None for a valid link, else the S3 error code and message."""
        if not expires.isdigit() or not hmac.compare_digest(signature, self._signature(path, int(expires))):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if now > int(expires):
            return "AccessDenied", "Request has expired"
        return None


def _matches(marker: str, text: str) -> bool:
    return bool(marker) and re.search(rf"\b{re.escape(marker)}\b", text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Account:
    """A host's account: its balance as last set (``quota``) and what jobs spent since, in USD."""

    quota: float
    spent: float

    @property
    def balance(self) -> float:
        """What is left (negative once jobs spent more than the balance, as on credit)."""
        return round(self.quota - self.spent, 9)


class Emulator:
    """The emulator's state: config, tasks, fault counters and stats (per API of ``hosts``, which maps each API to
    the host that serves and bills it), shared by every route."""

    def __init__(self, config: EmulatorConfig, hosts: dict[str, str]) -> None:
        self.initial_config = config
        self.hosts = hosts
        self.apis = tuple(hosts)
        self.signer = UrlSigner(secrets.token_bytes(32))
        self.reset()

    def reset(self) -> None:
        """Forget every task and count, and go back to the startup config."""
        self.tasks: dict[str, Task] = {}
        self.submits: Counter[str] = Counter()
        self.submit_requests: Counter[str] = Counter()
        self.polls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.spent: dict[str, float] = dict.fromkeys(HOSTS, 0.0)
        self.balance_reads: Counter[str] = Counter()
        #: When the poll outage of each API ends (a UTC epoch).
        self.poll_outages: dict[str, float] = {}
        self.config = self.initial_config
        self.configure(self.initial_config)

    def configure(self, config: EmulatorConfig, changed: Mapping[str, Any] | None = None) -> None:
        """Use ``config`` from now on; fault counters and the random generator start afresh. ``changed`` holds the
        settings a client named (None: all of them): the spending of each host whose balance it changes or names
        starts afresh, and a poll outage it names starts now."""
        balances_set = (changed or {}).get("balance") or ()
        for host in HOSTS:
            if host in balances_set or config.balance.get(host) != self.config.balance.get(host):
                self.spent[host] = 0.0
        self.config = config
        self.rng = random.Random(config.random_seed)
        self._counters = {name: FaultCounter(getattr(config, name), self.rng) for name in FAULTS}
        self._error_statuses = itertools.cycle(config.server_error_statuses)
        if changed is None or "poll_outage_seconds" in changed:
            until = time.time() + config.poll_outage_seconds
            self.poll_outages.update(dict.fromkeys(config.poll_outage_apis or self.apis, until))

    def poll_outage(self, api: str) -> bool:
        """True (and counted in the stats) while a poll outage of ``api`` lasts."""
        if time.time() >= self.poll_outages.get(api, 0.0):
            return False
        self.faults[POLL_OUTAGE] += 1
        return True

    def fault(self, name: str) -> bool:
        """Count one event for fault ``name``; True (and counted in the stats) when it fires."""
        fired = self._counters[name].fires()
        if fired:
            self.faults[name] += 1
        return fired

    def server_error_status(self) -> int:
        """The status of the next injected server error (the configured ones in turn)."""
        return next(self._error_statuses)

    def account(self, host: str) -> Account:
        """The account of ``host`` (``novita`` or ``gptge``)."""
        return Account(self.config.balance.get(host, DEFAULT_BALANCE), self.spent[host])

    def charge(self, api: str, plan: Plan) -> float:
        """Lower the balance of the host of ``api`` by the price of one job of ``plan``; return that price."""
        price = self.config.prices.get(api)
        if price is None:
            return 0.0
        cost = price.per_job + price.per_output * plan.output_count
        self.spent[self.hosts[api]] += cost
        return float(cost)

    def count_poll(self, task: Task) -> None:
        """Count one answered poll of ``task``."""
        task.polls += 1
        self.polls[task.api] += 1

    def pick_seed(self, value: Any) -> int:
        """``value`` when it is a seed; a fresh one for -1 or nothing (as the vendors do)."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        return self.rng.randrange(2**31)

    def create_task(self, task_id: str, api: str, path: str, body: dict[str, Any], plan: Plan) -> Task:
        """Register a paid task, its outcome decided now from the markers and the fault rules."""
        config = self.config
        outcome = Phase.SUCCEEDED
        if _matches(config.fail_marker, plan.prompt) or self.fault("task_failure"):
            outcome = Phase.FAILED
        elif _matches(config.expire_marker, plan.prompt) or self.fault("task_expiry"):
            outcome = Phase.EXPIRED
        task = Task(
            id=task_id,
            api=api,
            path=path,
            body=body,
            plan=plan,
            outcome=outcome,
            nsfw_flagged=_matches(config.nsfw_marker, plan.prompt),
            submitted_at=time.time(),
            duration=config.seconds_for(plan.video, self.rng),
        )
        self.tasks[task_id] = task
        self.submits[api] += 1
        self.charge(api, plan)
        return task

    def stats(self) -> dict[str, Any]:
        """Paid submits, submit requests (accepted or not) and polls per API, injected faults, each host's balance,
        spending and balance reads (USD), per-task counts and times (UTC epochs)."""
        now = time.time()
        accounts = {host: self.account(host) for host in HOSTS}
        return {
            "balance": {host: account.balance for host, account in accounts.items()},
            "spent": {host: round(account.spent, 9) for host, account in accounts.items()},
            "balance_reads": {host: self.balance_reads[host] for host in HOSTS},
            "submits": {api: self.submits[api] for api in self.apis},
            "submit_requests": {api: self.submit_requests[api] for api in self.apis},
            "polls": {api: self.polls[api] for api in self.apis},
            "faults": {name: self.faults[name] for name in (*FAULTS, POLL_OUTAGE)},
            "tasks": {
                task.id: {
                    "api": task.api,
                    "status": task.status(now),
                    "polls": task.polls,
                    "downloads": task.downloads,
                    "submitted_at": task.submitted_at,
                    "finished_at": task.finished_at,
                }
                for task in self.tasks.values()
            },
        }
