"""Vendor-neutral task results: what crosses XCom and trigger events (always as ``model_dump(mode="json")``)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TaskStatus(StrEnum):
    """Normalised state of a vendor task."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True once the vendor will not change the task any more."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.EXPIRED})


class TaskProgress(NamedTuple):
    """What one poll says of a task still under way: cheap to read, no outputs."""

    status: TaskStatus
    progress: float | None = None
    eta_seconds: float | None = None


#: Who judged an output: the vendor's own check, the built-in local model (the ``nsfw`` extra), or the user's scorer.
VerdictSource = Literal["vendor", "local", "scorer"]


class NsfwVerdict(BaseModel):
    """An NSFW check of one output and where it came from: ``checked`` says a check ran (for the vendor, Novita's
    ``valid``), ``confidence`` 0..100 is how likely the output is NSFW. For a video, ``frames_checked`` frames were
    scored and the worst stood at ``worst_frame_seconds``. A verdict stored before ``source`` existed loads as the
    vendor's."""

    model_config = ConfigDict(frozen=True)

    checked: bool
    confidence: float | None = Field(default=None, ge=0, le=100)
    source: VerdictSource = "vendor"
    model: str | None = None
    frames_checked: int | None = Field(default=None, ge=0)
    worst_frame_seconds: float | None = Field(default=None, ge=0)


class MediaOutput(BaseModel):
    """One generated file, reachable at ``url`` until ``expires_at`` (UTC)."""

    model_config = ConfigDict(frozen=True)

    url: str
    kind: Literal["image", "video", "audio"]
    format: str | None = None
    expires_at: datetime | None = None
    nsfw: NsfwVerdict | None = None


#: Why the NSFW filter set an output aside: judged NSFW, never judged, or not decodable as the media it claims to be.
RejectionCause = Literal["flagged", "unchecked", "undecodable"]


class RejectedOutput(BaseModel):
    """An output set aside: by the NSFW filter (``cause``), then possibly by a ``reviewer`` in human review.
    ``preview`` is a small JPEG (``data:`` URI) of a flagged video's worst frame, for the reviewer."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    output: MediaOutput
    reason: str
    cause: RejectionCause
    reviewer: str | None = None
    preview: str | None = None


class ReviewApproval(BaseModel):
    """An output set aside that a reviewer approved for publishing, and when."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    reviewer: str | None = None
    responded_at: datetime | None = None


class Usage(BaseModel):
    """What a submit asked the vendor for, what the vendor reported using, and its estimated cost.

    ``outputs`` (images or videos asked), ``video_seconds`` and ``resolution`` come from the request, before it is
    sent: they are what a budget counts. ``reported`` holds the vendor's own usage figures where it reports any;
    ``estimated_cost`` and ``currency`` are set where the connection's ``prices`` extra prices the request.
    """

    outputs: int = Field(default=1, ge=0)
    video_seconds: float | None = Field(default=None, ge=0)
    resolution: str | None = None
    reported: dict[str, Any] | None = None
    estimated_cost: float | None = Field(default=None, ge=0)
    currency: str | None = None


class GenerationResult(BaseModel):
    """The state of one vendor task, with its outputs once it succeeded.

    ``prompt`` and ``model`` say what was asked (read from ``request`` by the API's adapter). After the NSFW filter
    ``outputs`` holds the kept outputs only: ``source_indexes`` gives the vendor's index of each (None: 0..n-1),
    ``rejected`` the outputs set aside and ``approved`` those a reviewer let through.
    """

    api: str
    task_id: str
    status: TaskStatus
    reason: str | None = None
    progress: float | None = Field(default=None, ge=0, le=100)
    eta_seconds: float | None = Field(default=None, ge=0)
    seed: int | None = None
    outputs: list[MediaOutput] = Field(default_factory=list)
    request: dict[str, Any] | None = None
    prompt: str | None = None
    model: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)
    source_indexes: list[int] | None = None
    rejected: list[RejectedOutput] = Field(default_factory=list)
    approved: list[ReviewApproval] = Field(default_factory=list)
    usage: Usage | None = None

    @model_validator(mode="after")
    def _one_index_per_output(self) -> GenerationResult:
        if self.source_indexes is not None and len(self.source_indexes) != len(self.outputs):
            raise ValueError(f"source_indexes has {len(self.source_indexes)} entries for {len(self.outputs)} outputs")
        return self

    def indexed_outputs(self) -> list[tuple[int, MediaOutput]]:
        """Each output with the vendor's index of it."""
        indexes = self.source_indexes if self.source_indexes is not None else range(len(self.outputs))
        return list(zip(indexes, self.outputs, strict=True))


_BASE64_RUN = re.compile(r"^[A-Za-z0-9+/=_\-\s]+$")
_BLOB_MIN_CHARS = 512


def _is_blob(value: str) -> bool:
    if value.startswith("data:") and ";base64," in value[:100]:
        return True
    return len(value) >= _BLOB_MIN_CHARS and _BASE64_RUN.match(value) is not None


def blob_placeholder(blob: str | bytes | bytearray | memoryview) -> str:
    """The short text shown instead of binary data or its base64: its size, never the data."""
    if isinstance(blob, str):
        return f"<base64: {len(blob)} chars elided>"
    return f"<{memoryview(blob).nbytes} bytes elided>"


def elide_blobs(value: Any) -> Any:
    """Return ``value`` with all binary data and every base64 blob (plain or data URI) replaced by a short
    placeholder, at any depth."""
    if isinstance(value, dict):
        return {key: elide_blobs(item) for key, item in value.items()}
    if isinstance(value, list):
        return [elide_blobs(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview) or (isinstance(value, str) and _is_blob(value)):
        return blob_placeholder(value)
    return value
