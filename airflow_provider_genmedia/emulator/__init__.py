"""Local emulator of the four vendor APIs, for demos and tests with no vendor account.

`create_app` builds the aiohttp application; `EmulatorServer` runs it in a background thread; the
``genmedia-emulator`` console script serves it from the command line.
"""

from __future__ import annotations

from airflow_provider_genmedia.emulator.app import create_app
from airflow_provider_genmedia.emulator.config import EmulatorConfig, FaultRule
from airflow_provider_genmedia.emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "FaultRule", "create_app"]
