"""Hooks that speak the vendor APIs over HTTP: sync (requests) on workers, async (aiohttp) in waits.

``submit``, ``get_result`` and ``aget_result`` retry with exponential backoff and jitter on 429, 5xx, timeouts
and connection errors, ``Retry-After`` honoured (seconds or HTTP date, capped). A submit POST is retried only
when the job was surely not created (the connection never opened, 429, 503), so a job is never paid for twice.
``apoll`` reads a task once without retrying, for waits whose own schedule polls again; every async call of a
process shares one session per event loop and connection (`airflow_provider_genmedia.hooks.sessions`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import requests
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret
from asgiref.sync import sync_to_async
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)
from tenacity.stop import stop_base
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_genmedia import GPTGE_BASE_URL, NOVITA_BASE_URL, __version__
from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.apis.base import RequestModel, TaskApi
from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaAuthError,
    GenMediaConnectionError,
    GenMediaError,
    GenMediaNotFoundError,
    GenMediaRateLimitError,
    GenMediaServerError,
    GenMediaUncertainSubmitError,
    GenMediaValidationError,
)
from airflow_provider_genmedia.hooks import sessions
from airflow_provider_genmedia.hooks.sessions import CONNECT_TIMEOUT, ConnectionSettings, SharedSession
from airflow_provider_genmedia.results import GenerationResult, TaskProgress

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 4
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
#: A ``Retry-After`` longer than this is not waited out inside one call; the error is raised instead.
MAX_RETRY_AFTER = 120.0
CONNECTION_TEST_TASK_ID = "airflow-connection-test"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date); None if absent."""
    lowered = {key.lower(): value for key, value in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(float(lowered["retry-after-ms"]) / 1000, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _backoff(attempt: int) -> float:
    """Exponential delay with up to 25 % jitter: 0.5, 1, 2, 4, 8, 8, ... seconds."""
    delay: float = min(INITIAL_RETRY_DELAY * 2 ** (attempt - 1), MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


def _retry_wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return min(float(retry_after), MAX_RETRY_AFTER)
    return _backoff(state.attempt_number)


def _waits_too_long(error: BaseException) -> bool:
    retry_after = getattr(error, "retry_after", None)
    return retry_after is not None and retry_after > MAX_RETRY_AFTER


def _retryable_read(error: BaseException) -> bool:
    return isinstance(error, GenMediaError) and error.transient and not _waits_too_long(error)


def _retryable_submit(error: BaseException) -> bool:
    return isinstance(error, GenMediaError) and error.resendable and not _waits_too_long(error)


def _error_class(status: int) -> type[GenMediaAPIError]:
    if status in (401, 403):
        return GenMediaAuthError
    if status == 404:
        return GenMediaNotFoundError
    if status == 429:
        return GenMediaRateLimitError
    if status >= 500:
        return GenMediaServerError
    return GenMediaAPIError


def _never_sent(error: BaseException) -> bool:
    """True when the error happened before a connection was made, so the vendor saw nothing."""
    if isinstance(error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return True
    if isinstance(error, requests.ConnectTimeout):
        return True
    seen: BaseException | None = error
    while seen is not None:
        reason = getattr(seen, "reason", None)
        if isinstance(seen, NewConnectionError | ConnectTimeoutError) or isinstance(
            reason, NewConnectionError | ConnectTimeoutError
        ):
            return True
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = nested or seen.__cause__ or seen.__context__
    return False


class GenMediaHook(BaseHook):
    """Shared HTTP machinery of the vendor hooks: auth, retries, typed errors, sync and async sessions.

    Use ``async with hook:`` in async code, so that the hook gives back its use of the shared aiohttp session.
    """

    conn_name_attr = "conn_id"
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    default_base_url: ClassVar[str]
    api_names: ClassVar[tuple[str, ...]]

    def __init__(
        self, conn_id: str | None = None, *, timeout: float | None = None, max_retries: int | None = None
    ) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self._timeout = timeout
        self._max_retries = max_retries
        self._settings: ConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._lease: SharedSession | None = None

    # -- connection ---------------------------------------------------------------------------------------

    def _settings_from(self, conn: Any, extras: Mapping[str, Any]) -> ConnectionSettings:
        def extra(name: str) -> Any:
            return extras.get(name, extras.get(f"extra__{self.conn_type}__{name}"))

        host = (conn.host or "").strip() or self.default_base_url
        if "://" not in host:
            host = f"https://{host}"
        parts = urlsplit(host)
        if conn.port and parts.port is None:
            host = parts._replace(netloc=f"{parts.netloc}:{conn.port}").geturl()
        if not conn.password:
            raise GenMediaValidationError("password", f"connection {self.conn_id!r} has no API key")
        mask_secret(conn.password)
        timeout = self._timeout or extra("timeout") or DEFAULT_TIMEOUT
        retries = self._max_retries if self._max_retries is not None else extra("max_retries")
        return ConnectionSettings(
            base_url=host.rstrip("/"),
            api_key=conn.password,
            timeout=float(timeout),
            max_retries=int(retries if retries not in (None, "") else DEFAULT_MAX_RETRIES),
            max_polls_per_second=_positive_or_none("max_polls_per_second", extra("max_polls_per_second")),
        )

    def settings(self) -> ConnectionSettings:
        """The connection's base URL, key, timeout and retry count (read once per hook)."""
        if self._settings is None:
            conn = self.get_connection(self.conn_id)
            self._settings = self._settings_from(conn, conn.extra_dejson)
        return self._settings

    async def asettings(self) -> ConnectionSettings:
        """`settings` for async code: never blocks the event loop."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            try:
                conn = await get_async_connection(self.conn_id, hook=self)
                extras = await get_async_extra_dejson(conn)
            except AirflowNotFoundException:
                # `airflow dags test` runs triggers in-process, where the async lookup cannot reach
                # connections stored in the metadata database; the sync lookup in a thread can.
                conn = await sync_to_async(self.get_connection)(self.conn_id)
                extras = await sync_to_async(lambda: conn.extra_dejson)()
            self._settings = self._settings_from(conn, extras)
        return self._settings

    def _headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {settings.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"airflow-provider-genmedia/{__version__}",
        }

    def _api(self, name: str) -> TaskApi:
        if name not in self.api_names:
            raise GenMediaValidationError("api", f"{type(self).__name__} serves {self.api_names}, not {name!r}")
        return get_api(name)

    # -- one request: shared error mapping -------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        key = self._settings.api_key if self._settings else None
        return text.replace(key, "***") if key else text

    def _read_answer(self, api: TaskApi, status: int, headers: Mapping[str, str], content: bytes) -> Any:
        """The JSON body of a 2xx answer; otherwise the typed error for the status and vendor body."""
        try:
            body = json.loads(content) if content else None
        except ValueError:
            body = None
        if 200 <= status < 300:
            if body is None:
                raise GenMediaAPIError("the answer is not JSON", status_code=status, api=api.name)
            return body
        code, message = api.parse_error(body)
        snippet = content[:300].decode(errors="replace") if body is None else ""
        error = _error_class(status)(
            self._scrub(str(message or snippet or f"HTTP {status}")),
            status_code=status,
            vendor_code=code,
            api=api.name,
            retry_after=parse_retry_after(headers),
            body=body,
        )
        raise error

    def _transport_error(self, error: BaseException, method: str, path: str) -> GenMediaConnectionError:
        kind = "timed out" if isinstance(error, TimeoutError | requests.Timeout) else "failed"
        detail = self._scrub(f"{type(error).__name__}: {error}")
        return GenMediaConnectionError(
            f"{method} {path.split('?')[0]} {kind} ({detail})", connected=not _never_sent(error)
        )

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; retrying in %.1f s (attempt %d)", error, delay, state.attempt_number + 1)

    def _retry_kwargs(
        self, settings: ConnectionSettings, *, submit: bool, deadline: float | None = None
    ) -> dict[str, Any]:
        stop: stop_base = stop_after_attempt(settings.max_retries + 1)
        if deadline is not None:
            stop |= stop_before_delay(max(deadline - time.time(), 0.0))
        return {
            "stop": stop,
            "wait": _retry_wait,
            "retry": retry_if_exception(_retryable_submit if submit else _retryable_read),
            "before_sleep": self._log_retry,
            "reraise": True,
        }

    # -- sync (workers) ------------------------------------------------------------------------------------

    def _get_session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _send(self, api: TaskApi, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        settings = self.settings()
        try:
            response = self._get_session().request(
                method,
                f"{settings.base_url}{path}",
                json=body,
                headers=self._headers(settings),
                timeout=(CONNECT_TIMEOUT, settings.timeout),
            )
        except requests.RequestException as error:
            raise self._transport_error(error, method, path) from None
        return self._read_answer(api, response.status_code, response.headers, response.content)

    def submit(self, api: str, path: str, body: RequestModel | Mapping[str, Any]) -> str:
        """Validate ``body`` for ``path``, POST it once, and return the vendor's task id."""
        task_api = self._api(api)
        payload = task_api.validate_submit(path, body)
        settings = self.settings()
        try:
            for attempt in Retrying(**self._retry_kwargs(settings, submit=True)):
                with attempt:
                    answer = self._send(task_api, "POST", path, payload)
                    task_id = self._task_id(task_api, path, answer)
        except GenMediaError as error:
            if error.outcome_unknown:
                raise GenMediaUncertainSubmitError(api, path, str(error)) from None
            raise
        log.info("Submitted %s task %s (%s)", api, task_id, path)
        return task_id

    def _task_id(self, api: TaskApi, path: str, answer: Any) -> str:
        try:
            return api.parse_submit(answer)
        except ValueError as error:
            # The vendor accepted the body, so the job may exist: never retried, never resubmitted blindly.
            raise GenMediaUncertainSubmitError(api.name, path, f"the answer could not be read: {error}") from None

    def get_result(self, api: str, task_id: str, *, deadline: float | None = None) -> GenerationResult:
        """Read the task's current state once, retrying transient failures; retries that would wait past
        ``deadline`` (a UTC epoch) are given up and the last error is raised."""
        task_api = self._api(api)
        try:
            for attempt in Retrying(**self._retry_kwargs(self.settings(), submit=False, deadline=deadline)):
                with attempt:
                    answer = self._send(task_api, "GET", task_api.result_path(task_id))
                    result = task_api.parse_result(task_id, answer)
        except GenMediaAPIError as error:
            return self._verdict_or_raise(task_api, task_id, error)
        return result

    def _verdict_or_raise(self, api: TaskApi, task_id: str, error: GenMediaAPIError) -> GenerationResult:
        verdict = api.task_failure(task_id, error.body)
        if verdict is None:
            raise error
        return verdict

    def close(self) -> None:
        """Close the sync HTTP session."""
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- async (waits): one session per event loop and connection ---------------------------------------

    async def __aenter__(self) -> GenMediaHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Give back this hook's use of the shared async session; its last user closes it."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            await sessions.release(self._session_key(), lease)

    def _session_key(self) -> tuple[Any, ...]:
        return (self.conn_type, self.conn_id, self._timeout, self._max_retries)

    async def _shared(self) -> SharedSession:
        if self._lease is None:
            lease = await sessions.acquire(self._session_key(), self._open_shared)
            if self._lease is None:
                self._lease, self._settings = lease, lease.settings
            else:  # a concurrent call of this same hook took its use first
                await sessions.release(self._session_key(), lease)
        return self._lease

    async def _open_shared(self) -> SharedSession:
        settings = self._settings or await self.asettings()
        return SharedSession.open(settings, self._headers(settings))

    async def _aread(self, api: TaskApi, task_id: str, *, cheap: bool) -> TaskProgress | GenerationResult:
        """One GET of the task: its progress while it runs when ``cheap``, else (or once it ended) its result."""
        shared = await self._shared()
        path = api.result_path(task_id)
        await shared.gate.wait()
        try:
            async with shared.session.get(f"{shared.settings.base_url}{path}", headers=shared.headers) as response:
                content = await response.read()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise self._transport_error(error, "GET", path) from None
        try:
            body = self._read_answer(api, response.status, response.headers, content)
            progress = api.parse_progress(body) if cheap else None
            answer = progress if progress is not None else api.parse_result(task_id, body)
        except GenMediaRateLimitError as error:
            shared.gate.pause(error.retry_after)
            raise
        except GenMediaAPIError as error:
            return self._verdict_or_raise(api, task_id, error)
        shared.gate.passed()
        return answer

    async def apoll(self, api: str, task_id: str) -> TaskProgress | GenerationResult:
        """Read the task once, without retrying (the caller's schedule polls again): a running task's
        `TaskProgress`, or its `GenerationResult` once the vendor answered anything else."""
        return await self._aread(self._api(api), task_id, cheap=True)

    async def aget_result(self, api: str, task_id: str) -> GenerationResult:
        """`get_result` for async code, over the shared session."""
        task_api = self._api(api)
        settings = (await self._shared()).settings
        async for attempt in AsyncRetrying(**self._retry_kwargs(settings, submit=False)):
            with attempt:
                result = await self._aread(task_api, task_id, cheap=False)
        assert isinstance(result, GenerationResult)
        return result

    # -- UI ------------------------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Ask once for a task that does not exist: any answer but 401/403 proves the URL and the key.

        Messages name the service of the connection type and its URL; a network failure reads
        ``<service>: cannot reach <url>: connection refused`` rather than the HTTP library's own text.
        """
        service = self.hook_name
        try:
            settings = self.settings()
        except GenMediaError as error:
            return False, f"{service}: {error}"
        api = get_api(self.api_names[0])
        try:
            response = self._get_session().get(
                f"{settings.base_url}{api.result_path(CONNECTION_TEST_TASK_ID)}",
                headers=self._headers(settings),
                timeout=(CONNECT_TIMEOUT, settings.timeout),
            )
        except requests.RequestException as error:
            return False, f"{service}: cannot reach {settings.base_url}: {network_failure(error, settings.timeout)}"
        finally:
            self.close()
        try:
            self._read_answer(api, response.status_code, response.headers, response.content)
        except GenMediaAuthError as error:
            return False, f"{service} at {settings.base_url} refused the API key: {_answer_text(error)}"
        except GenMediaNotFoundError:
            pass
        except GenMediaAPIError as error:
            if error.status_code is None or error.status_code >= 500:
                return False, f"{service} at {settings.base_url} failed: {_answer_text(error)}"
        return True, f"Connected to {service} at {settings.base_url}; the API key was accepted."


def _answer_text(error: GenMediaAPIError) -> str:
    """``HTTP 401 [INVALID_API_KEY]: message``: the vendor's answer without naming one API of the service."""
    code = f" [{error.vendor_code}]" if error.vendor_code not in (None, "") else ""
    return f"HTTP {error.status_code}{code}: {error.message}"


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it wraps (``args[0]``, urllib3's ``reason``, causes and contexts)."""
    found: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        nested = [current.args[0] if current.args else None, getattr(current, "reason", None)]
        nested += [current.__cause__, current.__context__]
        pending += [item for item in nested if isinstance(item, BaseException)]
    return found


def network_failure(error: BaseException, read_timeout: float) -> str:
    """What went wrong on the network, in a few words: ``connection refused``, ``host name not found``,
    ``no answer within 60 s``, ``TLS failed: ...``; the operating system's words otherwise."""
    # Imported here to keep this helper self-contained next to `test_connection`, its one user.
    import socket
    import ssl

    from urllib3.exceptions import NameResolutionError

    causes = _causes(error)
    if any(isinstance(cause, socket.gaierror | NameResolutionError) for cause in causes):
        return "host name not found"
    tls = next((cause for cause in causes if isinstance(cause, ssl.SSLError)), None)
    if tls is not None:
        return f"TLS failed: {getattr(tls, 'reason', None) or tls}"
    if any(isinstance(cause, requests.ConnectTimeout) for cause in causes):
        return f"no connection within {CONNECT_TIMEOUT:g} s"
    if any(isinstance(cause, requests.Timeout | TimeoutError) for cause in causes):
        return f"no answer within {read_timeout:g} s"
    os_error = next((cause for cause in reversed(causes) if isinstance(cause, OSError) and cause.strerror), None)
    if os_error is not None and os_error.strerror:
        return os_error.strerror[0].lower() + os_error.strerror[1:]
    return type(causes[-1]).__name__


class NovitaHook(GenMediaHook):
    """Novita AI v3 async API (connection type ``novita``)."""

    default_conn_name = "novita_default"
    conn_type = "novita"
    hook_name = "Novita AI"
    default_base_url = NOVITA_BASE_URL
    api_names = ("novita",)


class GptGeHook(GenMediaHook):
    """gpt.ge aggregator: Jimeng, Ali Bailian and digital-human video (connection type ``gptge``)."""

    default_conn_name = "gptge_default"
    conn_type = "gptge"
    hook_name = "gpt.ge"
    default_base_url = GPTGE_BASE_URL
    api_names = ("jimeng", "bailian", "avatar")


def _positive_or_none(field: str, value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if number <= 0:
        raise GenMediaValidationError(field, f"must be a positive number, not {value!r}")
    return number


def hook_for_api(api: str, conn_id: str | None = None) -> GenMediaHook:
    """The hook class that serves ``api``, built on ``conn_id`` (default: the API's default connection)."""
    for hook_class in (NovitaHook, GptGeHook):
        if api in hook_class.api_names:
            return hook_class(conn_id or get_api(api).default_conn_id)
    raise GenMediaValidationError("api", f"no hook serves {api!r}")
