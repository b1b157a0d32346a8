"""Generate, filter and publish in real Airflow (``dag.test()``) against the emulator, onto a ``file://`` folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.emulator_fixtures import EmulatorControl
from tests.system.conftest import task_states
from tests.system.dags.publish_system_dags import PUBLISHED, publish_dag

pytestmark = pytest.mark.system


@pytest.fixture
def published_folder() -> Path:
    folder = Path(urlsplit(PUBLISHED).path)
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def asset_events(dag_run: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(asset uri, extra)`` of the asset events the run emitted."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == dag_run.run_id)).all()
        return [(event.asset.uri, event.extra) for event in events]


def test_safe_images_are_published_with_a_manifest_and_an_asset_event(
    emulator_connections: EmulatorControl, input_image: str, published_folder: Path, xcom: Callable[..., Any]
) -> None:
    dag_run = publish_dag.test(run_conf={"image": input_image})
    assert task_states(dag_run) == {name: ("success", 1) for name in ("img2img", "nsfw_filter", "publish")}
    generated = xcom(dag_run, "img2img")
    task_id = generated["task_id"]
    assert (generated["prompt"], generated["model"]) == ("a watercolor fox", "sd_xl_base_1.0.safetensors")
    published = xcom(dag_run, "publish")
    names = [f"novita_{task_id}_{index}.png" for index in (0, 1)]
    assert [file["name"] for file in published["files"]] == names
    manifest = json.loads((published_folder / f"novita_{task_id}.manifest.json").read_text())
    assert published["manifest"] == f"{PUBLISHED}/novita_{task_id}.manifest.json"
    assert (manifest["prompt"], manifest["model"], manifest["seed"]) == (
        "a watercolor fox",
        "sd_xl_base_1.0.safetensors",
        1234,
    )
    for entry, name in zip(manifest["files"], names, strict=True):
        data = (published_folder / name).read_bytes()
        assert (entry["sha256"], entry["bytes"]) == (hashlib.sha256(data).hexdigest(), len(data))
        # The manifest says whose verdict it is: Novita's own check here.
        assert {key: entry["nsfw"][key] for key in ("checked", "confidence", "source")} == {
            "checked": True,
            "confidence": 1.2,
            "source": "vendor",
        }
        assert "?" not in entry["source_url"]
    [(uri, extra)] = asset_events(dag_run)
    assert uri == PUBLISHED
    assert extra["manifest"] == published["manifest"]
    assert [file["uri"] for file in extra["files"]] == [f"{PUBLISHED}/{name}" for name in names]


def test_flagged_images_are_dropped_and_nothing_is_published(
    emulator_connections: EmulatorControl, input_image: str, published_folder: Path, xcom: Callable[..., Any]
) -> None:
    dag_run = publish_dag.test(run_conf={"image": input_image, "prompt": "an nsfw fox"})
    assert task_states(dag_run) == {name: ("success", 1) for name in ("img2img", "nsfw_filter", "publish")}
    filtered = xcom(dag_run, "nsfw_filter")
    assert filtered["outputs"] == []
    assert [item["cause"] for item in filtered["rejected"]] == ["flagged", "flagged"]
    assert xcom(dag_run, "publish")["files"] == []
    assert not published_folder.exists()
    [(_, extra)] = asset_events(dag_run)
    assert extra == {"manifest": None, "files": []}
