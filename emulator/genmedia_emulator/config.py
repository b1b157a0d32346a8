"""The emulator's settings: timings, URL lifetimes, markers and fault injection (CLI flags or ``/_emulator/config``)."""

from __future__ import annotations

import random
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

T = TypeVar("T")

#: The bearer key clients must send unless another is set: it guards nothing but a local emulator.
DEFAULT_API_KEY = "emulator-key"


class FaultRule(BaseModel):
    """When a fault fires: for the ``next`` N events, on every ``every``-th event, and at random with ``rate``.

    ``next`` and ``every`` are exact counters, so tests never depend on chance; ``rate`` draws from the
    emulator's random generator (fixed by ``random_seed``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    next: int = Field(default=0, ge=0)
    every: int = Field(default=0, ge=0)
    rate: float = Field(default=0.0, ge=0, le=1)


class JobPrice(BaseModel):
    """What the emulated vendor charges for one job: ``per_job`` plus ``per_output`` for each image or video."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_job: float = Field(default=0.0, ge=0)
    per_output: float = Field(default=0.0, ge=0)


#: The two emulated vendor hosts, each with an account balance of its own.
HOSTS = ("novita", "gptge")
APIS = ("novita", "jimeng", "bailian", "avatar")
#: The balance of a host that ``balance`` does not name, in USD.
DEFAULT_BALANCE = 100.0


class FaultCounter:
    """The running state of one `FaultRule`."""

    def __init__(self, rule: FaultRule, rng: random.Random) -> None:
        self._rule = rule
        self._rng = rng
        self._remaining = rule.next
        self._seen = 0

    def fires(self) -> bool:
        """Count one event and say whether the fault hits it."""
        self._seen += 1
        if self._remaining:
            self._remaining -= 1
            return True
        if self._rule.every and self._seen % self._rule.every == 0:
            return True
        return self._rule.rate > 0 and self._rng.random() < self._rule.rate


#: The fault rules, by the name used in the config, the stats and the CLI (``--rate-limit-every``, ...).
#: ``submit_cut`` creates the job of a valid submit and then drops the connection without any answer.
FAULTS = ("rate_limit", "server_error", "drop_download", "task_failure", "task_expiry", "submit_cut")
#: The time-window fault: every task-result poll answers a gateway's 502 page while it lasts (``poll_outage_seconds``).
POLL_OUTAGE = "poll_outage"


#: Settings that pick between answer shapes the vendors' own documents show (CLI flags of the same names).
VARIANTS = (
    "url_signing",
    "novita_retry_after",
    "gptge_retry_after",
    "novita_submit_answer",
    "image_url_ttl_type",
    "avatar_result",
)


def _known_keys(value: dict[str, T], known: tuple[str, ...]) -> dict[str, T]:
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; expected one of {known}")
    return value


class EmulatorConfig(BaseModel):
    """Everything that shapes the emulator's answers; every field can be changed at run time."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    api_key: str = Field(default=DEFAULT_API_KEY, min_length=1)
    #: How long an image or a video task takes from submit to its end; both are multiplied by ``time_scale``.
    image_seconds: float = Field(default=2.0, ge=0)
    video_seconds: float = Field(default=4.0, ge=0)
    #: When set, each task's duration is drawn from ``image_seconds`` (``video_seconds``) to this, uniformly, from the
    #: seeded generator (``random_seed``), as real jobs vary.
    image_seconds_max: float | None = Field(default=None, ge=0)
    video_seconds_max: float | None = Field(default=None, ge=0)
    time_scale: float = Field(default=1.0, gt=0)
    #: Lifetime of signed output URLs in seconds; None keeps each vendor's own (1 h, Bailian 24 h).
    url_ttl: int | None = Field(default=None, ge=1)
    url_signing: Literal["once", "per_poll"] = Field(
        default="once",
        description="once: links signed at the task's end, expiring url_ttl later, the same on every poll "
        "(DashScope); per_poll: signed afresh at each poll",
    )
    #: Base of output URLs; None uses the scheme and host the client called.
    public_url: str | None = None
    #: Base URL that every download answers a 307 to, its path and query kept (a CDN or a hostile relay in front of
    #: the store); None serves the file.
    redirect_downloads: str | None = None
    #: Seconds added before every API answer.
    latency: float = Field(default=0.0, ge=0)
    #: Seconds the emulator's clock runs ahead when it answers a task-result poll or checks a download link, so that a
    #: test sees "later" (a re-signed link, an expired one) without waiting for it.
    clock_offset: float = Field(default=0.0, ge=0)
    #: The ``Retry-After`` of injected 429 answers, in seconds, when the host sends one (next two settings).
    retry_after: int = Field(default=1, ge=0)
    novita_retry_after: bool = Field(default=False, description="Retry-After on Novita's 429s (none documented)")
    gptge_retry_after: bool = Field(default=False, description="Retry-After on gpt.ge's 429s (none documented)")
    novita_submit_answer: Literal["flat", "legacy"] = Field(
        default="flat", description='Novita submit answer: {"task_id"} or {"code": 0, "msg": "", "data": {"task_id"}}'
    )
    image_url_ttl_type: Literal["string", "integer"] = Field(
        default="string", description='Novita image_url_ttl as "3600" or 3600'
    )
    avatar_result: Literal["flat", "wrapped"] = Field(
        default="flat", description='avatar task result flat or wrapped in {"code": 0, "data": ...}'
    )
    #: Statuses of injected server errors, used in turn (500 in the vendor's envelope, 502/503 as a proxy page).
    server_error_statuses: list[Literal[500, 502, 503]] = Field(default=[500, 502, 503], min_length=1)
    rate_limit: FaultRule = FaultRule()
    server_error: FaultRule = FaultRule()
    drop_download: FaultRule = FaultRule()
    task_failure: FaultRule = FaultRule()
    task_expiry: FaultRule = FaultRule()
    submit_cut: FaultRule = FaultRule()
    #: For this many seconds from when it is set (at start-up, by a reset, or by ``/_emulator/config`` naming it),
    #: every task-result poll of the APIs in ``poll_outage_apis`` (empty: all) answers a gateway's 502 page, as a
    #: vendor's gateway in an outage; submits still work. Each API keeps the window last started for it.
    poll_outage_seconds: float = Field(default=0.0, ge=0)
    poll_outage_apis: list[Literal["novita", "jimeng", "bailian", "avatar"]] = []
    #: Words that, found in a prompt (whole word, any case), make a task fail, expire, or score as NSFW.
    fail_marker: str = "fail"
    expire_marker: str = "expire"
    nsfw_marker: str = "nsfw"
    fail_reason: str = "emulated failure: the generation was rejected"
    #: Seed of the generator behind fault rates and the seeds picked for ``seed: -1``; None for a random one.
    random_seed: int | None = None
    #: Each host's account balance in USD (Novita's balance, the gpt.ge key's quota; a host left out has
    #: `DEFAULT_BALANCE`), as its balance routes answer it; setting a host's balance starts its spending afresh.
    balance: dict[str, float] = Field(default_factory=dict)
    #: What a job of each API costs; every accepted submit lowers its host's balance by it (APIs left out are free).
    prices: dict[str, JobPrice] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ranges(self) -> EmulatorConfig:
        for kind in ("image", "video"):
            high = getattr(self, f"{kind}_seconds_max")
            if high is not None and high < getattr(self, f"{kind}_seconds"):
                raise ValueError(f"{kind}_seconds_max must be at least {kind}_seconds")
        return self

    @field_validator("balance")
    @classmethod
    def _known_hosts(cls, value: dict[str, float]) -> dict[str, float]:
        return _known_keys(value, HOSTS)

    @field_validator("prices")
    @classmethod
    def _known_apis(cls, value: dict[str, JobPrice]) -> dict[str, JobPrice]:
        return _known_keys(value, APIS)

    def updated(self, changes: dict[str, Any]) -> EmulatorConfig:
        """A copy with ``changes`` applied and validated (a fault rule given replaces the whole rule)."""
        return EmulatorConfig.model_validate({**self.model_dump(), **changes})

    def seconds_for(self, video: bool, rng: random.Random) -> float:
        """How long a task of this kind takes, time scale applied: drawn from ``rng`` when its range is set."""
        low, high = (
            (self.video_seconds, self.video_seconds_max) if video else (self.image_seconds, self.image_seconds_max)
        )
        return (low if high is None else rng.uniform(low, high)) * self.time_scale
