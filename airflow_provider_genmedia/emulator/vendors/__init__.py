"""One renderer per vendor API (mirroring ``apis/``): how each reads a submit and words its answers and errors."""

from __future__ import annotations

from airflow_provider_genmedia.emulator.vendors.avatar import AvatarRenderer
from airflow_provider_genmedia.emulator.vendors.bailian import BailianRenderer
from airflow_provider_genmedia.emulator.vendors.base import GPTGE, NOVITA, Gateway, Renderer, View
from airflow_provider_genmedia.emulator.vendors.jimeng import JimengRenderer
from airflow_provider_genmedia.emulator.vendors.novita import NovitaRenderer

RENDERERS: dict[str, Renderer] = {
    renderer.api: renderer for renderer in (NovitaRenderer(), JimengRenderer(), BailianRenderer(), AvatarRenderer())
}

__all__ = ["GPTGE", "NOVITA", "RENDERERS", "Gateway", "Renderer", "View"]
