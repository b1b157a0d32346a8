"""Fixtures for the adapter tests: the vendor's own JSON examples and small real images."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

SEED_EXAMPLES = Path(__file__).parent / "seed_examples"
RECEIVED_AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def seed_example(name: str) -> Any:
    """A JSON example copied verbatim from a vendor's page (docs/vendor-sources.md names each page)."""
    return json.loads((SEED_EXAMPLES / f"{name}.json").read_text())


def png_base64(width: int = 64, height: int = 48) -> str:
    """A real PNG of the given size, base64-encoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def image_b64() -> str:
    return png_base64()
