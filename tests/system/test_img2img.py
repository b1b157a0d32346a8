"""Image-to-image end to end: real Airflow (``dag.test()``, deferral through the real trigger) and the emulator."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from PIL import Image

from tests.emulator_fixtures import EmulatorControl
from tests.system.conftest import task_states
from tests.system.dags import img2img_system_dags as dags

pytestmark = pytest.mark.system


def assert_images(result: dict[str, Any], size: tuple[int, int]) -> None:
    assert result["status"] == "succeeded"
    assert result["seed"] == 1234
    assert len(result["outputs"]) == 2
    for output in result["outputs"]:
        assert (output["kind"], output["format"]) == ("image", "png")
        assert output["nsfw"]["checked"] is True
        with Image.open(io.BytesIO(requests.get(output["url"], timeout=10).content)) as image:
            assert (image.format, image.size) == ("PNG", size)
    assert "<base64:" in result["request"]["request"]["image_base64"]


@pytest.mark.parametrize("dag", [dags.deferrable_dag, dags.worker_dag], ids=["deferrable", "on-worker"])
def test_img2img_completes_with_one_submit(
    dag: Any,
    emulator_connections: EmulatorControl,
    input_image: str,
    xcom: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag_run = dag.test(run_conf={"image": input_image})
    assert task_states(dag_run) == {"img2img": ("success", 1)}
    result = xcom(dag_run, "img2img")
    assert_images(result, (320, 240))
    assert xcom(dag_run, "img2img", key="genmedia_task_id") == result["task_id"]
    stats = emulator_connections.stats()
    assert stats["submits"]["novita"] == 1
    printed = capfd.readouterr()
    assert "Submitted novita task" in printed.out + caplog.text
    assert emulator_connections.api_key not in printed.out + printed.err + caplog.text + json.dumps(result)


def test_sensor_waits_for_a_task_submitted_elsewhere(
    emulator_connections: EmulatorControl, input_image: str, xcom: Callable[..., Any]
) -> None:
    dag_run = dags.sensor_dag.test(run_conf={"image": input_image})
    assert {task: state for task, (state, _) in task_states(dag_run).items()} == {
        "submit": "success",
        "wait_deferred": "success",
        "wait_poking": "success",
    }
    task_id = xcom(dag_run, "submit")
    for sensor in ("wait_deferred", "wait_poking"):
        result = xcom(dag_run, sensor)
        assert (result["task_id"], result["status"], len(result["outputs"])) == (task_id, "succeeded", 2)
    assert emulator_connections.stats()["submits"]["novita"] == 1


def test_a_retry_resumes_the_same_vendor_task(
    emulator_connections: EmulatorControl, input_image: str, xcom: Callable[..., Any]
) -> None:
    """The first try is killed while the vendor still works; the second try finishes the same vendor task."""
    emulator_connections.configure(image_seconds=3)
    dag_run = dags.retry_dag.test(run_conf={"image": input_image})
    assert task_states(dag_run) == {"img2img": ("success", 2)}
    result = xcom(dag_run, "img2img")
    assert_images(result, (320, 240))
    stats = emulator_connections.stats()
    assert stats["submits"]["novita"] == 1
    assert list(stats["tasks"]) == [result["task_id"]]


def rendered_fields(dag_run: Any, task_id: str, map_index: int = -1) -> dict[str, Any]:
    """What the UI's Rendered Templates shows for one task instance (read from the metadata database)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalar(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.dag_id == dag_run.dag_id,
                RenderedTaskInstanceFields.run_id == dag_run.run_id,
                RenderedTaskInstanceFields.task_id == task_id,
                RenderedTaskInstanceFields.map_index == map_index,
            )
        )
        assert row is not None, task_id
        return dict(row.rendered_fields)


def test_rendered_templates_show_every_setting_and_never_the_image_bytes(
    emulator_connections: EmulatorControl, xcom: Callable[..., Any]
) -> None:
    dag_run = dags.rendered_dag.test(run_conf={"image": ""})
    assert {task: state for task, (state, _) in task_states(dag_run).items()} == {
        "load_image": "success",
        "from_xcom": "success",
        "mapped": "success",
    }
    for task_id, map_index, size in (("from_xcom", -1, (256, 136)), ("mapped", 0, (192, 128))):
        fields = rendered_fields(dag_run, task_id, map_index)
        assert fields["image"].startswith("<base64: ") and fields["image"].endswith(" chars elided>")
        shown = {name: fields[name] for name in ("steps", "strength", "guidance_scale", "image_num", "seed")}
        assert shown == {"steps": 12, "strength": 0.35, "guidance_scale": 6.5, "image_num": 1, "seed": 1234}
        assert (fields["sampler_name"], fields["prompt"]) == ("Euler a", "a watercolor fox")
        assert fields["enable_nsfw_detection"] is True and fields["response_image_type"] == "png"
        result = xcom(dag_run, task_id, map_index=map_index)
        # The real image went to the vendor: the emulator answers with images of the input's size.
        with Image.open(io.BytesIO(requests.get(result["outputs"][0]["url"], timeout=10).content)) as image:
            assert image.size == size
        # Airflow resolved the extra link on the worker and stored it in XCom: the first output, still valid.
        link = xcom(dag_run, task_id, key="_link_FirstOutputLink", map_index=map_index)
        assert link == result["outputs"][0]["url"] and requests.get(link, timeout=10).status_code == 200
    assert emulator_connections.stats()["submits"]["novita"] == 2
