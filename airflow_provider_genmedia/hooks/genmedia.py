"""Hooks that speak the vendor APIs: one aiohttp transport, used by async code directly and by sync code on the
hook's own event loop.

``submit``, ``get_result`` and ``aget_result`` retry with exponential backoff and jitter what the error calls
transient (429, 5xx, timeouts, connection errors; `airflow_provider_genmedia.retries`). A submit POST is
resent only when the job was surely not created (the connection never opened, 429, 503), so a job is never paid
for twice. ``apoll`` reads a task once without retrying, for waits whose own schedule polls again. Every call of
one event loop shares one session per connection (`airflow_provider_genmedia.hooks.sessions`).

The calls about one API's tasks are a `TaskClient`'s: the hook bound to that API's adapter, made once by `client_for`
(the provider's own code) or `GenMediaHook.client` (a name, as users write it); the hook's ``submit``,
``get_result``, ``aget_result`` and ``apoll`` make one for the call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import aiohttp
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook
from asgiref.sync import sync_to_async
from tenacity import AsyncRetrying

from airflow_provider_genmedia import __version__, connection_type_info
from airflow_provider_genmedia.apis import GPTGE_BASE_URL, NOVITA_BASE_URL, apis_on, get_api
from airflow_provider_genmedia.apis.base import Submission, TaskApi
from airflow_provider_genmedia.balance import BALANCE_ROUTES, Balance, check_min_balance
from airflow_provider_genmedia.budgets import Reservation, SpendLedger
from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaAuthError,
    GenMediaConnectionError,
    GenMediaError,
    GenMediaNotFoundError,
    GenMediaRateLimitError,
    GenMediaUncertainSubmitError,
    GenMediaValidationError,
    job_may_exist,
)
from airflow_provider_genmedia.hooks import sessions
from airflow_provider_genmedia.hooks.connection_settings import ConnectionSettings, base_url
from airflow_provider_genmedia.hooks.json_or_error import (
    answer_text,
    network_failure,
    read_answer,
    read_body,
    transport_error,
)
from airflow_provider_genmedia.hooks.sessions import SharedSession
from airflow_provider_genmedia.results import GenerationResult, TaskProgress
from airflow_provider_genmedia.retries import retry_policy, retryable_read, retryable_submit

if TYPE_CHECKING:
    from airflow_provider_genmedia.safe_fetch import FetchPolicy

log = logging.getLogger(__name__)

CONNECTION_TEST_TASK_ID = "airflow-connection-test"
T = TypeVar("T")


def _form_widgets(hook: type[GenMediaHook]) -> dict[str, Any]:
    """The connection form's extra fields as wtforms fields (Airflow 3.0-3.1; its API server reads them with
    wtforms stood in for, and the UI shows nothing extra where wtforms is missing, as for every provider). wtforms
    offers no number field there: numbers are text fields, read as numbers by the hook."""
    from wtforms import IntegerField, StringField
    from wtforms.validators import Optional

    fields = connection_type_info(hook.conn_type)["conn-fields"]
    return {
        name: (IntegerField if "integer" in field["schema"]["type"] else StringField)(
            field["label"],
            description=field["description"],
            default=field["schema"].get("default"),
            validators=[Optional()],
        )
        for name, field in fields.items()
    }


def _field_behaviour(hook: type[GenMediaHook]) -> dict[str, Any]:
    """The connection form's hidden, relabelled and placeholder fields (Airflow 3.0-3.1)."""
    behaviour = connection_type_info(hook.conn_type)["ui-field-behaviour"]
    return {key.replace("-", "_"): value for key, value in behaviour.items()}


class GenMediaHook(BaseHook):
    """Shared HTTP machinery of the vendor hooks: auth, retries, typed errors, one session per event loop.

    Use ``async with hook:`` in async code, so that the hook gives back its use of the shared session; each sync
    call runs in an event loop of its own and gives its session back when it ends.
    """

    conn_name_attr = "conn_id"
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    default_base_url: ClassVar[str]

    def __init__(
        self, conn_id: str | None = None, *, timeout: float | None = None, max_retries: int | None = None
    ) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self._timeout = timeout
        self._max_retries = max_retries
        self._settings: ConnectionSettings | None = None
        self._lease: SharedSession | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give each connection type's hook its own form methods: Airflow before 3.2 reads the connection form only
        from methods defined on the hook class itself, never inherited ones (3.2+ reads the provider info's
        ``conn-fields`` and ``ui-field-behaviour`` instead, the same fields)."""
        super().__init_subclass__(**kwargs)
        if "conn_type" in cls.__dict__:
            cls.get_connection_form_widgets = classmethod(_form_widgets)  # type: ignore[assignment,method-assign]
            cls.get_ui_field_behaviour = classmethod(_field_behaviour)  # type: ignore[assignment,method-assign]

    @classmethod
    def served_apis(cls) -> tuple[TaskApi, ...]:
        """The adapters of the APIs this hook serves: those whose connection type is this hook's."""
        return apis_on(cls.conn_type)

    # -- connection ---------------------------------------------------------------------------------------

    def _settings_from(self, conn: Any, extras: Mapping[str, Any]) -> ConnectionSettings:
        prefixed = {key.removeprefix(f"extra__{self.conn_type}__"): value for key, value in extras.items()}
        return ConnectionSettings.read(
            conn,
            {**prefixed, **extras},
            self.default_base_url,
            timeout=self._timeout,
            max_retries=self._max_retries,
            apis=tuple(api.name for api in self.served_apis()),
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
            # Reading the settings masks the key, which Airflow 3.0's triggerer reports to its supervisor with a
            # sync call that refuses to run on the event loop's thread: read them on a thread of their own.
            self._settings = await sync_to_async(self._settings_from)(conn, extras)
        return self._settings

    def _headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {settings.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"airflow-provider-genmedia/{__version__}",
        }

    def client(self, api: str) -> TaskClient:
        """This hook bound to API ``api`` (a name, resolved here once): `TaskClient`."""
        return TaskClient(self, get_api(api))

    def _scrub(self, text: str) -> str:
        key = self._settings.api_key if self._settings else None
        return text.replace(key, "***") if key else text

    # -- the session: shared per event loop and connection ----------------------------------------------

    async def __aenter__(self) -> GenMediaHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Give back this hook's use of the shared session; its last user closes it."""
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

    async def ashared_settings(self) -> ConnectionSettings:
        """The settings of the session this hook shares in the running event loop: the connection is read once for
        every wait on it, not once per wait."""
        return (await self._shared()).settings

    async def _open_shared(self) -> SharedSession:
        settings = self._settings or await self.asettings()
        return SharedSession.open(settings, self._headers(settings))

    def run_sync(self, call: Coroutine[Any, Any, T]) -> T:
        """Run an async call of this hook from sync code, in an event loop of its own, and give back the session
        when it ends. The connection is read first with the caller's own (sync) lookup."""

        async def run_and_release() -> T:
            try:
                return await call
            finally:
                await self.aclose()

        try:
            if _in_event_loop():
                raise RuntimeError(f"{type(self).__name__}: in async code, await the a* methods instead")
            self.settings()
        except BaseException:
            call.close()
            raise
        return asyncio.run(run_and_release())

    async def _request(self, api: TaskApi, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """One request over the shared session: the JSON answer, or the provider's error for it."""
        shared = await self._shared()
        url = f"{shared.settings.base_url}{path}"
        try:
            async with shared.session.request(method, url, json=body, headers=shared.headers) as response:
                content = await read_body(response, f"{method} {path.split('?')[0]}")
        except (TimeoutError, aiohttp.ClientError) as error:
            raise transport_error(error, method, path, self._scrub) from None
        return read_answer(api, response.status, response.headers, content, self._scrub)

    # -- submit ------------------------------------------------------------------------------------------

    async def asubmit(self, submission: Submission) -> str:
        """`TaskClient.asubmit` on the client of the submission's API."""
        return await TaskClient(self, submission.api).asubmit(submission)

    def submit(self, submission: Submission) -> str:
        """`asubmit` from sync code."""
        return self.run_sync(self.asubmit(submission))

    # -- balance -----------------------------------------------------------------------------------------------

    async def abalance(self) -> Balance:
        """The vendor account's balance, from the route the vendor documents (`airflow_provider_genmedia.balance`),
        each GET retried as a read is."""
        route, api = BALANCE_ROUTES[self.conn_type], self.served_apis()[0]
        settings = (await self._shared()).settings

        async def fetch(path: str) -> Any:
            answer = None
            async for attempt in AsyncRetrying(**retry_policy(settings.max_retries, retryable_read, log)):
                with attempt:
                    answer = await self._request(api, "GET", path)
            return answer

        return await route.read(fetch)

    def balance(self) -> Balance:
        """`abalance` from sync code."""
        return self.run_sync(self.abalance())

    async def _check_balance(self, settings: ConnectionSettings) -> None:
        """Refuse a submit (`GenMediaBalanceError`), before anything is sent, while the balance is below the extra
        ``min_balance``."""
        if settings.min_balance is None:
            return
        balance = await self.abalance()
        log.info("%s balance: %s (min_balance %g)", self.conn_id, balance.describe(), settings.min_balance)
        check_min_balance(self.hook_name, self.conn_id, balance, settings.min_balance)

    # -- reading a task ----------------------------------------------------------------------------------

    async def apoll(self, api: str, task_id: str) -> TaskProgress | GenerationResult:
        """`TaskClient.apoll` on the client of API ``api``."""
        return await self.client(api).apoll(task_id)

    async def aget_result(self, api: str, task_id: str, *, deadline: float | None = None) -> GenerationResult:
        """`TaskClient.aget_result` on the client of API ``api``."""
        return await self.client(api).aget_result(task_id, deadline=deadline)

    def get_result(self, api: str, task_id: str, *, deadline: float | None = None) -> GenerationResult:
        """`aget_result` from sync code."""
        return self.run_sync(self.aget_result(api, task_id, deadline=deadline))

    # -- UI ------------------------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Ask once for a task that does not exist: any answer but 401/403 proves the URL and the key.

        Messages name the service of the connection type and its URL; a network failure reads
        ``<service>: cannot reach <url>: connection refused`` rather than the HTTP library's own text.
        """
        try:
            settings = self.settings()
            return self.run_sync(self._atest_connection(settings))
        except GenMediaError as error:
            return False, f"{self.hook_name}: {error}"

    async def _atest_connection(self, settings: ConnectionSettings) -> tuple[bool, str]:
        service, api = self.hook_name, self.served_apis()[0]
        try:
            await self._request(api, "GET", api.result_path(CONNECTION_TEST_TASK_ID))
        except GenMediaConnectionError as error:
            return False, f"{service}: cannot reach {settings.base_url}: {network_failure(error, settings.timeout)}"
        except GenMediaAuthError as error:
            return False, f"{service} at {settings.base_url} refused the API key: {answer_text(error)}"
        except GenMediaNotFoundError:
            pass
        except GenMediaAPIError as error:
            if error.status_code is None or error.status_code >= 500:
                return False, f"{service} at {settings.base_url} failed: {answer_text(error)}"
        return True, f"Connected to {service} at {settings.base_url}; the API key was accepted."


class NovitaHook(GenMediaHook):
    """Novita AI v3 async API (connection type ``novita``)."""

    default_conn_name = "novita_default"
    conn_type = "novita"
    hook_name = "Novita AI"
    default_base_url = NOVITA_BASE_URL


class GptGeHook(GenMediaHook):
    """gpt.ge aggregator: Jimeng, Ali Bailian and digital-human video (connection type ``gptge``)."""

    default_conn_name = "gptge_default"
    conn_type = "gptge"
    hook_name = "gpt.ge"
    default_base_url = GPTGE_BASE_URL


class TaskClient:
    """One API's tasks on one connection: a hook bound to the adapter of an API it serves, as openai-python binds a
    resource to its client (``client.videos.retrieve(id)``). The adapter is resolved once, by whoever builds the client
    (`client_for`, `GenMediaHook.client`), and travels as that object from there to the HTTP call.

    ``async with client:`` gives back the hook's use of the shared session, as ``async with hook:`` does.
    """

    def __init__(self, hook: GenMediaHook, api: TaskApi) -> None:
        if api.conn_type != hook.conn_type:
            served = tuple(served.name for served in hook.served_apis())
            raise GenMediaValidationError("api", f"{type(hook).__name__} serves {served}, not {api.name!r}")
        self.hook = hook
        self.api = api

    async def __aenter__(self) -> TaskClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.hook.aclose()

    def run_sync(self, call: Coroutine[Any, Any, T]) -> T:
        """`GenMediaHook.run_sync`: an async call of this client from sync code."""
        return self.hook.run_sync(call)

    # -- submit ------------------------------------------------------------------------------------------

    async def asubmit(self, submission: Submission) -> str:
        """POST a submission as this API's `TaskApi.prepare` made it (checked there, not again) and return the vendor's
        task id. A connection with a daily budget takes its units first (`airflow_provider_genmedia.budgets`) and
        gives them back only when the error proves that no job was made; the POST is resent only then too."""
        if submission.api is not self.api:
            name = submission.api.name
            raise GenMediaValidationError("api", f"the {self.api.name} client cannot send a {name} submission")
        hook = self.hook
        settings = (await hook._shared()).settings
        await hook._check_balance(settings)
        reservation = await self._reserve(settings, submission)
        try:
            task_id = await self._post(submission.path, submission.body, settings)
        except BaseException as error:
            if reservation is not None and not job_may_exist(error):
                await asyncio.to_thread(reservation.release)
            raise
        log.info("Submitted %s task %s (%s)", self.api.name, task_id, submission.path)
        return task_id

    def submit(self, submission: Submission) -> str:
        """`asubmit` from sync code."""
        return self.hook.run_sync(self.asubmit(submission))

    async def _reserve(self, settings: ConnectionSettings, submission: Submission) -> Reservation | None:
        """Take today's budget units of this submit on the connection, or raise: None without a budget."""
        if not settings.budget.limited:
            return None
        outputs = self.api.requested_usage(submission.body).outputs
        owner = {"api": self.api.name, "path": submission.path}
        conn_id = self.hook.conn_id

        def take() -> Reservation:
            return SpendLedger.configured().take(conn_id, settings.budget, outputs, owner)

        return await asyncio.to_thread(take)

    async def _post(self, path: str, body: Mapping[str, Any], settings: ConnectionSettings) -> str:
        """The POST and its resends: the task id, or an error; one whose outcome is unknown (`job_may_exist`)
        becomes `GenMediaUncertainSubmitError`."""
        try:
            async for attempt in AsyncRetrying(**retry_policy(settings.max_retries, retryable_submit, log)):
                with attempt:
                    answer = await self.hook._request(self.api, "POST", path, body)
                    task_id = self._task_id(path, answer)
        except GenMediaError as error:
            if error.outcome_unknown and not isinstance(error, GenMediaUncertainSubmitError):
                raise GenMediaUncertainSubmitError(self.api.name, path, str(error)) from None
            raise
        return task_id

    def _task_id(self, path: str, answer: Any) -> str:
        """The task id in a submit answer. The vendor accepted the body, so the job may exist: an answer that cannot
        be read is an uncertain submit, never retried nor resubmitted blindly; the vendor's own error code in it is
        the vendor's verdict (`GenMediaAPIError.outcome_unknown` decides)."""
        try:
            return self.api.parse_submit(answer)
        except GenMediaError:
            raise
        except Exception as error:
            raise GenMediaUncertainSubmitError(self.api.name, path, f"the answer could not be read: {error}") from None

    # -- reading a task ----------------------------------------------------------------------------------

    async def _read(self, task_id: str, *, cheap: bool) -> TaskProgress | GenerationResult:
        """One GET of the task, in its turn at the connection's `PollGate`: its progress while it runs when
        ``cheap``, else (or once it ended) its result. A rate limit, by HTTP status or by the vendor's own code in
        the body, pauses every read of the connection."""
        api = self.api
        gate = (await self.hook._shared()).gate
        await gate.wait()
        try:
            body = await self.hook._request(api, "GET", api.result_path(task_id))
            progress = api.parse_progress(body) if cheap else None
            answer = progress if progress is not None else api.parse_result(task_id, body)
        except GenMediaRateLimitError as error:
            gate.pause(error.retry_after)
            raise
        except GenMediaAPIError as error:
            verdict = api.task_failure(task_id, error.body)
            if verdict is None:
                raise
            return verdict
        gate.passed()
        return answer

    async def apoll(self, task_id: str) -> TaskProgress | GenerationResult:
        """Read the task once, without retrying (the caller's schedule polls again): a running task's
        `TaskProgress`, or its `GenerationResult` once the vendor answered anything else."""
        return await self._read(task_id, cheap=True)

    async def aget_result(self, task_id: str, *, deadline: float | None = None) -> GenerationResult:
        """Read the task's current state, retrying transient failures; retries that would wait past ``deadline``
        (a UTC epoch) are given up and the last error is raised."""
        settings = (await self.hook._shared()).settings
        policy = retry_policy(settings.max_retries, retryable_read, log, deadline=deadline)
        async for attempt in AsyncRetrying(**policy):
            with attempt:
                result = await self._read(task_id, cheap=False)
        assert isinstance(result, GenerationResult)
        return result

    def get_result(self, task_id: str, *, deadline: float | None = None) -> GenerationResult:
        """`aget_result` from sync code."""
        return self.hook.run_sync(self.aget_result(task_id, deadline=deadline))


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


HOOKS: dict[str, type[GenMediaHook]] = {hook.conn_type: hook for hook in (NovitaHook, GptGeHook)}


def hook_for(api: TaskApi, conn_id: str | None = None) -> GenMediaHook:
    """The hook of the connection type that serves ``api``, on ``conn_id`` (default: the API's default connection)."""
    return HOOKS[api.conn_type](conn_id or api.default_conn_id)


def client_for(api: TaskApi, conn_id: str | None = None) -> TaskClient:
    """The client of ``api`` on ``conn_id`` (default: the API's default connection): its hook bound to its adapter."""
    return TaskClient(hook_for(api, conn_id), api)


def fetch_policy_for(api: TaskApi, conn_id: str | None = None) -> FetchPolicy:
    """What the links of ``api``'s results on ``conn_id`` may reach (`airflow_provider_genmedia.safe_fetch`): the
    connection's own origin, and those of ``[genmedia] allowed_private_origins``. The connection is read here, once;
    an API's default connection that does not exist lends no origin of its own."""
    from airflow_provider_genmedia.safe_fetch import FetchPolicy

    hook = hook_for(api, conn_id)
    try:  # the base URL only: a policy needs neither the key nor the other extras
        own: str | None = base_url(hook.get_connection(hook.conn_id), hook.default_base_url)
    except AirflowNotFoundException:
        if conn_id:
            raise
        own = None
    return FetchPolicy.for_connection(own)
