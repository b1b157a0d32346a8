"""Run the emulator in the background of the current process: for tests, demos and notebooks."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from aiohttp import web

from genmedia_emulator.app import create_app
from genmedia_emulator.config import EmulatorConfig

START_TIMEOUT = 10.0


class EmulatorServer:
    """The emulator on ``host`` (a free port by default), served by its own event loop in a daemon thread.

    Use it as a context manager, or call `start` and `stop`; ``url`` is known once started.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    async def _serve(self) -> None:
        runner = web.AppRunner(create_app(self.config), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the thread that called start()
            self._error = error
        finally:
            self._ready.set()

    def start(self) -> EmulatorServer:
        """Start serving; return once the port is bound."""
        self._thread = threading.Thread(target=self._run, name="genmedia-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"the emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT)
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
