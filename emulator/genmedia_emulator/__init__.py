"""Local emulator of the four vendor APIs (Novita AI, and gpt.ge's Jimeng, Bailian and avatar), for demos and tests
with no vendor account. It needs neither Airflow nor the provider.

`create_app` builds the aiohttp application; `EmulatorServer` runs it in a background thread; the
``genmedia-emulator`` console script serves it from the command line. ``genmedia_stack`` (a distribution of its own,
in the repository's ``stack/`` folder) runs a local Airflow against it.
"""

from __future__ import annotations

from genmedia_emulator.app import create_app
from genmedia_emulator.config import EmulatorConfig, FaultRule
from genmedia_emulator.server import EmulatorServer

__version__ = "0.1.0"

__all__ = ["EmulatorConfig", "EmulatorServer", "FaultRule", "create_app"]
