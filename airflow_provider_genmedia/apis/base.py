"""The contract every vendor adapter fulfils, and the helpers they share."""

from __future__ import annotations

import base64
import binascii
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from airflow_provider_genmedia.exceptions import GenMediaAPIError, GenMediaValidationError
from airflow_provider_genmedia.results import GenerationResult, TaskProgress, Usage, elide_blobs
from airflow_provider_genmedia.urls import is_http_url

if TYPE_CHECKING:
    from airflow_provider_genmedia.pricing import Prices

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class PollSchedule:
    """How often to ask a vendor about a task: ``first`` poll after submit, then between ``minimum``
    and ``maximum`` seconds apart (all in seconds).

    ``end_interval`` bounds how late a finished task is seen when the vendor tells nothing (no eta, no progress):
    from ``earliest_end`` seconds after submit, when the API's fastest tasks end, such polls come at most that far
    apart; before it they grow towards ``maximum`` but none lands later than ``earliest_end + end_interval``. None
    lets them grow to ``maximum`` throughout. A wait of ``T`` seconds then costs at most ``(T - earliest_end) /
    end_interval`` polls after ``earliest_end``, plus the few of the growth before it.
    """

    first: float
    minimum: float
    maximum: float
    end_interval: float | None = None
    earliest_end: float = 0.0


class RequestModel(BaseModel):
    """Base of every submit body model: unknown fields are an error, not silently sent. A model's validator is built
    when it first checks a request (on a worker), not when a DAG file imports it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: optional fields that were not given are left out."""
        return self.model_dump(mode="json", exclude_none=True)


def _http_url(value: str) -> str:
    if not is_http_url(value):
        raise ValueError("must be an http(s) URL")
    return value


HttpUrlStr = Annotated[str, AfterValidator(_http_url)]
"""A string that must be an absolute http(s) URL; kept exactly as given."""


def decode_base64(value: str) -> bytes:
    """Decode plain or data-URI base64; raise ``ValueError`` when it is not base64."""
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64") from None


def validate_model(model: type[ModelT], data: Any, *, prefix: str = "") -> ModelT:
    """Validate ``data`` with ``model``; a failure becomes a `GenMediaValidationError` naming the fields."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", exclude_none=True)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            location = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
            message = error["msg"].removeprefix("Value error, ")
            problems.append((location or "body", message))
        field = problems[0][0]
        text = "; ".join(f"{location}: {message}" for location, message in problems)
        raise GenMediaValidationError(field, text.removeprefix(f"{field}: ")) from None


def number(value: Any) -> float | None:
    """Read a number the vendor may send as a number, a numeric string, an empty string or null; None for anything
    else, infinities and NaN included."""
    if value is None or isinstance(value, bool):
        return None
    try:
        as_float = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past a float's range
        return None
    return as_float if math.isfinite(as_float) else None


def percent(value: Any) -> float | None:
    """A progress percentage, clamped to 0..100."""
    as_float = number(value)
    return None if as_float is None else min(max(as_float, 0.0), 100.0)


def seconds(value: Any) -> float | None:
    """A non-negative duration in seconds."""
    as_float = number(value)
    return None if as_float is None else max(as_float, 0.0)


def integer(value: Any) -> int | None:
    """Read an integer the vendor may send as a string (``"3600"``, ``"158881667"``)."""
    as_float = number(value)
    return int(as_float) if as_float is not None else None


def text(value: Any) -> str | None:
    """A non-blank string the vendor sent; None for anything else (null, a number, an object, blank text)."""
    return value if isinstance(value, str) and value.strip() else None


def mapping(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for null, a list or anything else."""
    return value if isinstance(value, dict) else {}


def array(value: Any) -> list[Any]:
    """A JSON array, or an empty one for null, an object or anything else."""
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class Submission:
    """A submit checked once by its API's adapter, before anything is sent: the adapter, the route, the validated
    request and the JSON body. Hooks send it as it is."""

    api: TaskApi
    path: str
    request: RequestModel | Mapping[str, Any]
    body: dict[str, Any]


def first_number(scopes: Iterable[Any], *names: str) -> float | None:
    """The first number (or numeric string) found under one of ``names``, looking through ``scopes`` in turn."""
    for scope in scopes:
        for name in names:
            value = number(mapping(scope).get(name))
            if value is not None:
                return value
    return None


def frame_size(value: Any) -> str | None:
    """A frame size as ``WxH`` from the vendors' ``"1280*720"``, ``"1280x720"`` or a ``(width, height)`` pair;
    other text (a tier such as ``"720P"``) as it is; None for nothing."""
    if isinstance(value, tuple | list) and len(value) == 2:
        width, height = (integer(side) for side in value)
        return f"{width}x{height}" if width and height else None
    if not isinstance(value, str) or not value.strip():
        return None
    sides = value.strip().replace("*", "x").split("x")
    if len(sides) == 2 and all(side.strip().isdigit() for side in sides):
        return f"{int(sides[0])}x{int(sides[1])}"
    return value.strip()


def first_text(scopes: Iterable[Any], *names: str) -> str | None:
    """The first non-empty string found under one of ``names``, looking through the JSON objects ``scopes`` in turn."""
    for scope in scopes:
        for name in names:
            value = mapping(scope).get(name)
            if isinstance(value, str) and value:
                return value
    return None


class TaskApi(ABC):
    """One vendor API: its routes, request models, and how to read its answers."""

    name: ClassVar[str]
    #: The connection type whose hook serves this API (``novita`` or ``gptge``).
    conn_type: ClassVar[str]
    default_conn_id: ClassVar[str]
    poll_schedule: ClassVar[PollSchedule]
    #: The model of a request whose route this API chooses itself (`submit_path`); None: a route must be given.
    request_class: ClassVar[type[RequestModel] | None] = None

    @abstractmethod
    def request_model(self, path: str) -> type[RequestModel] | None:
        """The model that validates a submit body for ``path`` (None: a generic JSON body)."""

    def submit_path(self, request: RequestModel) -> str:
        """The route a validated request is sent to."""
        raise GenMediaValidationError("path", f"{self.name} needs an explicit submit path")

    def prepare(self, body: RequestModel | Mapping[str, Any], path: str | None = None) -> Submission:
        """Check ``body`` once, before anything is sent, and choose its route when ``path`` is None. A request
        model instance of the right class was checked when it was built and is not checked again."""
        model = self.request_model(path) if path is not None else self.request_class
        if model is None:
            if path is None:
                raise GenMediaValidationError("path", f"{self.name} needs an explicit submit path")
            if not isinstance(body, Mapping):
                raise GenMediaValidationError("body", "must be a JSON object")
            return Submission(self, path, body, dict(body))
        request = body if isinstance(body, model) else validate_model(model, body)
        expected = self.submit_path(request)
        if path is not None and expected != path:
            raise GenMediaValidationError("path", f"this request must be sent to {expected}, not {path}")
        return Submission(self, expected, request, request.to_body())

    def complete(
        self,
        result: GenerationResult,
        request: Mapping[str, Any] | None,
        *,
        path: str | None = None,
        prices: Prices | None = None,
    ) -> GenerationResult:
        """A succeeded result as the submitted ``request`` asked for it: the request recorded (base64 elided), with
        the prompt and the model it asked for, and its `Usage`: what the request asked, what the vendor reported,
        and the cost that the connection's ``prices`` give a job sent to ``path`` (None: the API's own prices)."""
        if request is None:
            return result
        prompt, model = self.describe_request(request)
        usage = self.usage(request, result.usage)
        if prices is not None:
            usage = prices.estimate(self.name, path, usage)
        update = {"request": elide_blobs(dict(request)), "prompt": prompt, "model": model, "usage": usage}
        return result.model_copy(update=update)

    def usage(self, request: Mapping[str, Any], reported: Usage | None) -> Usage:
        """What ``request`` asked (`requested_usage`), its gaps filled from what the vendor ``reported``
        (`reported_usage`), whose own figures are kept in ``reported``."""
        asked = self.requested_usage(request)
        if reported is None:
            return asked
        return asked.model_copy(
            update={
                "video_seconds": reported.video_seconds if asked.video_seconds is None else asked.video_seconds,
                "resolution": asked.resolution or reported.resolution,
                "reported": reported.reported,
            }
        )

    @abstractmethod
    def result_path(self, task_id: str) -> str:
        """The route that answers the task's state."""

    @abstractmethod
    def parse_submit(self, body: Any) -> str:
        """The task id in a submit answer."""

    def submitted(self, task_id: Any) -> str:
        """The task id read from a submit answer, as text. None there (or an object, a list, a boolean) is the
        provider's error, whose outcome is unknown: the vendor accepted the request, so the job may exist."""
        if not task_id or not isinstance(task_id, str | int) or isinstance(task_id, bool):
            raise GenMediaAPIError("the answer could not be read: it holds no task id", api=self.name)
        return str(task_id)

    @abstractmethod
    def parse_progress(self, body: Any) -> TaskProgress | None:
        """The status, progress and eta of a task-result answer about a task still under way, read without
        building a result; None for any other answer (ended, or an error), which `parse_result` reads."""

    @abstractmethod
    def parse_result(self, task_id: str, body: Any, *, received_at: datetime | None = None) -> GenerationResult:
        """The normalised state of a task-result answer received at ``received_at`` (default now)."""

    def requested_usage(self, body: Mapping[str, Any]) -> Usage:
        """What a submit body asks for (outputs, video seconds, resolution), read before it is sent: one output
        unless the adapter knows better."""
        return Usage()

    def reported_usage(self, body: Mapping[str, Any]) -> Usage | None:
        """What a task-result answer says the task used, with the vendor's own figures in ``reported``; None where
        the vendor reports no usage (the default)."""
        return None

    @abstractmethod
    def describe_request(self, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """The prompt and the model of a submitted body, where it names them (None where it does not)."""

    def parse_error(self, body: Any) -> tuple[str | int | None, str | None]:
        """The vendor's error code and message in an error body (Novita, gateway, Volcengine or DashScope)."""
        data = mapping(body)
        nested = data.get("error")
        if isinstance(nested, dict):
            return nested.get("code") or nested.get("type"), nested.get("message")
        if isinstance(nested, str):
            return data.get("code"), nested
        code = data.get("reason") or data.get("code")
        message = data.get("message") or data.get("msg")
        return code, message

    def task_failure(self, task_id: str, body: Any) -> GenerationResult | None:
        """A task verdict carried by an HTTP error answer to the result route (None: a plain API error)."""
        return None

    def result(self, task_id: str, body: Any, **fields: Any) -> GenerationResult:
        """Build a result for this API with the vendor body kept, base64 blobs elided, and the usage it reports."""
        data = mapping(body)
        fields.setdefault("usage", self.reported_usage(data))
        return GenerationResult(api=self.name, task_id=task_id, raw=elide_blobs(data), **fields)


def now_utc() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
