"""The emulator of the vendor APIs in a process of its own, the way a vendor is another machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

import requests

from genmedia_emulator.config import DEFAULT_API_KEY
from genmedia_stack.processes import BIN, ServerProcess, launch, wait_until


@dataclass
class EmulatorProcess(ServerProcess):
    """``genmedia-emulator`` in its own process, controlled over HTTP; ``arguments`` are more of its command-line
    flags."""

    api_key: str = DEFAULT_API_KEY
    arguments: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the emulated vendors."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start and wait until it answers."""
        command = [str(BIN / "genmedia-emulator"), "--port", str(self.port), "--api-key", self.api_key, *self.arguments]
        self.process = launch(command, self.log)
        wait_until(self._answers, 30, "the emulator")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"the emulator stopped at start-up (exit code {self.process.returncode}); see {self.log}"
            )
        try:
            return requests.get(f"{self.url}/_emulator/stats", timeout=2).ok
        except requests.RequestException:
            return False

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``."""
        response = requests.get(f"{self.url}/_emulator/stats", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def configure(self, **settings: Any) -> None:
        """``POST /_emulator/config``."""
        requests.post(f"{self.url}/_emulator/config", json=settings, timeout=10).raise_for_status()

    def reset(self) -> None:
        """Forget tasks and counts; restore the start-up settings."""
        requests.post(f"{self.url}/_emulator/reset", timeout=10).raise_for_status()
