"""The aiohttp application: vendor routes, presigned downloads and the ``/_emulator`` control routes."""

from __future__ import annotations

import asyncio
import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import partial
from xml.sax.saxutils import escape

from aiohttp import web

from genmedia_emulator.config import EmulatorConfig
from genmedia_emulator.media import CONTENT_TYPES, render
from genmedia_emulator.schemas.base import BodyError
from genmedia_emulator.state import Emulator, Phase, Task
from genmedia_emulator.vendors import GPTGE, NOVITA, RENDERERS, Gateway, Renderer, View

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EMULATOR = web.AppKey("emulator", Emulator)
FILES_ROUTE = "/_emulator/files"
#: img2img bodies carry images of up to 10 MB as base64.
MAX_BODY_BYTES = 32 * 1024 * 1024
_PROXY_ERRORS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}


def _proxy_error(status: int) -> web.Response:
    """The HTML page a reverse proxy answers when the service behind it is down."""
    title = f"{status} {_PROXY_ERRORS[status]}"
    page = f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
    return web.Response(
        status=status, text=f"{page}<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", content_type="text/html"
    )


def _guarded(gateway: Gateway, handler: Handler) -> Handler:
    """Wrap an API route: extra latency, bearer auth, then injected 429 and server errors."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        emulator = request.app[EMULATOR]
        config = emulator.config
        if config.latency:
            await asyncio.sleep(config.latency)
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), config.api_key.encode()):
            return gateway.error(401, "INVALID_API_KEY", "Missing or invalid API key")
        if emulator.fault("rate_limit"):
            response = gateway.error(429, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded, please try again later")
            if getattr(config, gateway.retry_after_setting):
                response.headers["Retry-After"] = str(config.retry_after)
            return response
        if emulator.fault("server_error"):
            status = emulator.server_error_status()
            if status in _PROXY_ERRORS:
                return _proxy_error(status)
            reason = "CREATE_TASK_FAILED" if request.method == "POST" else "GET_RESULT_FAILED"
            return gateway.error(status, reason, "Internal server error")
        return await handler(request)

    return guarded


def _counted(api: str, handler: Handler) -> Handler:
    """Count every request that reaches a submit route, accepted or not (proof that nothing was sent)."""

    async def counted(request: web.Request) -> web.StreamResponse:
        request.app[EMULATOR].submit_requests[api] += 1
        return await handler(request)

    return counted


async def _submit(renderer: Renderer, request: web.Request) -> web.StreamResponse:
    """Check the body against the vendor's documented schema (the emulator's own), then create a paid task."""
    emulator = request.app[EMULATOR]
    try:
        renderer.schema(request.path)
    except KeyError:
        return renderer.gateway.error(404, "API_NOT_FOUND", f"no API at {request.path}")
    try:
        body = renderer.check(request.path, await request.json())
    except ValueError as error:  # not JSON at all, or a BodyError
        return renderer.invalid(error if isinstance(error, BodyError) else BodyError("body: is not valid JSON"))
    plan = renderer.plan(request.path, body, emulator.pick_seed)
    task = emulator.create_task(renderer.new_task_id(), renderer.api, request.path, body, plan)
    if emulator.fault("submit_cut"):
        return _no_answer(request)
    return web.json_response(renderer.submitted(task, emulator.config))


def _no_answer(request: web.Request) -> web.StreamResponse:
    """Drop the connection before a single byte of the answer is sent (the job exists all the same)."""
    if request.transport is not None:
        request.transport.abort()
    response = web.Response(status=499)
    response.force_close()
    return response


async def _no_api(request: web.Request) -> web.StreamResponse:
    """Novita's 404 ``API_NOT_FOUND`` for any other route under ``/v3/``."""
    return NOVITA.error(404, "API_NOT_FOUND", f"no API at {request.path}")


def _signed_urls(request: web.Request, task: Task, ttl: int, now: float) -> dict[str, str]:
    """The task's download links: signed once at its end and kept, or afresh at each poll (``url_signing``)."""
    emulator = request.app[EMULATOR]
    once = emulator.config.url_signing == "once"
    if once and task.links is not None:
        return task.links
    base = (emulator.config.public_url or str(request.url.origin())).rstrip("/")
    expires = math.ceil((task.finished_at if once else now) + ttl)
    links = {name: base + emulator.signer.sign(f"{FILES_ROUTE}/{task.id}/{name}", expires) for name in task.plan.files}
    if once:
        task.links = links
    return links


async def _poll(renderers: tuple[Renderer, ...], request: web.Request) -> web.StreamResponse:
    """Answer a task's state in the body of the API it was submitted to; a gateway's 502 page during a poll outage
    of that API."""
    emulator = request.app[EMULATOR]
    task_id = request.match_info.get("task_id") or request.query.get("task_id", "")
    if not task_id:
        return renderers[0].gateway.error(400, "INVALID_REQUEST_BODY", "task_id: is required")
    task = emulator.tasks.get(task_id)
    if task is None or task.api not in {renderer.api for renderer in renderers}:
        return renderers[0].not_found(task_id)
    if emulator.poll_outage(task.api):
        return _proxy_error(502)
    renderer = RENDERERS[task.api]
    emulator.count_poll(task)
    now = time.time() + emulator.config.clock_offset
    status = task.status(now)
    ttl = emulator.config.url_ttl or renderer.url_ttl
    urls = _signed_urls(request, task, ttl, now) if status is Phase.SUCCEEDED else {}
    return renderer.result(View(task, now, status, urls, ttl, emulator.config))


def _storage_error(status: int, code: str, message: str) -> web.Response:
    """An S3-style XML error."""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
    )
    return web.Response(status=status, text=xml, content_type="application/xml")


async def _cut_short(request: web.Request, data: bytes, content_type: str) -> web.StreamResponse:
    """Announce the whole file, send half of it, and drop the connection."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = len(data)
    response.force_close()
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    if request.transport is not None:
        request.transport.abort()
    return response


async def _download(request: web.Request) -> web.StreamResponse:
    """Serve an output file behind a presigned link; expired or forged links get S3's 403."""
    emulator = request.app[EMULATOR]
    query = request.query
    now = time.time() + emulator.config.clock_offset
    refusal = emulator.signer.refusal(request.path, query.get("Expires", ""), query.get("Signature", ""), now)
    if refusal is not None:
        return _storage_error(403, *refusal)
    task = emulator.tasks.get(request.match_info["task_id"])
    name = request.match_info["name"]
    spec = task.plan.files.get(name) if task else None
    if task is None or spec is None:
        return _storage_error(404, "NoSuchKey", "The specified key does not exist.")
    task.downloads += 1
    if emulator.config.redirect_downloads:
        raise web.HTTPTemporaryRedirect(emulator.config.redirect_downloads.rstrip("/") + str(request.rel_url))
    if name not in task.rendered:
        task.rendered[name] = await asyncio.to_thread(render, spec)
    data, content_type = task.rendered[name], CONTENT_TYPES[spec.format]
    if request.method == "GET" and emulator.fault("drop_download"):
        return await _cut_short(request, data, content_type)
    return web.Response(body=data, content_type=content_type)


async def _balance(gateway: Gateway, request: web.Request) -> web.StreamResponse:
    """A balance route of ``gateway``'s host, answered from the host's account (counted in the stats)."""
    emulator = request.app[EMULATOR]
    emulator.balance_reads[gateway.host] += 1
    return web.json_response(gateway.balance(request.path, emulator.account(gateway.host)))


async def _stats(request: web.Request) -> web.StreamResponse:
    """``{"submits", "polls", "faults", "tasks"}``."""
    return web.json_response(request.app[EMULATOR].stats())


async def _show_config(request: web.Request) -> web.StreamResponse:
    """The settings in force (the API key left out)."""
    return web.json_response(request.app[EMULATOR].config.model_dump(mode="json", exclude={"api_key"}))


async def _change_config(request: web.Request) -> web.StreamResponse:
    """Apply a partial JSON object of settings; fault counters start afresh."""
    emulator = request.app[EMULATOR]
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object of settings")
        emulator.configure(emulator.config.updated(changes), changed=changes)
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)
    return await _show_config(request)


async def _reset(request: web.Request) -> web.StreamResponse:
    """Forget tasks and counts and restore the startup settings."""
    request.app[EMULATOR].reset()
    return web.Response(status=204)


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """The emulator of all four vendor APIs as an aiohttp application (serve it with any aiohttp runner)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[EMULATOR] = Emulator(
        config or EmulatorConfig(), {api: renderer.gateway.host for api, renderer in RENDERERS.items()}
    )
    router = app.router
    router.add_get("/v3/async/task-result", _guarded(NOVITA, partial(_poll, (RENDERERS["novita"],))))
    router.add_get("/task/{task_id}", _guarded(GPTGE, partial(_poll, (RENDERERS["jimeng"], RENDERERS["bailian"]))))
    router.add_get("/avatar/task/{task_id}", _guarded(GPTGE, partial(_poll, (RENDERERS["avatar"],))))
    for renderer in RENDERERS.values():
        for path in renderer.submit_routes:
            router.add_post(path, _counted(renderer.api, _guarded(renderer.gateway, partial(_submit, renderer))))
    for gateway in (NOVITA, GPTGE):
        for path in gateway.balance_paths:
            router.add_get(path, _guarded(gateway, partial(_balance, gateway)))
    router.add_route("*", "/v3/{tail:.*}", _guarded(NOVITA, _no_api))
    router.add_get(f"{FILES_ROUTE}/{{task_id}}/{{name}}", _download)
    router.add_get("/_emulator/stats", _stats)
    router.add_get("/_emulator/config", _show_config)
    router.add_post("/_emulator/config", _change_config)
    router.add_post("/_emulator/reset", _reset)
    return app
