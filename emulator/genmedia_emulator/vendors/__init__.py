"""One renderer per vendor API (mirroring ``apis/``): how each reads a submit and words its answers and errors."""

from __future__ import annotations

from genmedia_emulator.vendors.avatar import AvatarRenderer
from genmedia_emulator.vendors.bailian import BailianRenderer
from genmedia_emulator.vendors.base import GPTGE, NOVITA, Gateway, Renderer, View
from genmedia_emulator.vendors.jimeng import JimengRenderer
from genmedia_emulator.vendors.novita import NovitaRenderer

RENDERERS: dict[str, Renderer] = {
    renderer.api: renderer for renderer in (NovitaRenderer(), JimengRenderer(), BailianRenderer(), AvatarRenderer())
}

__all__ = ["GPTGE", "NOVITA", "RENDERERS", "Gateway", "Renderer", "View"]
