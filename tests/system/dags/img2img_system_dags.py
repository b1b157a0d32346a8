"""DAGs that the system tests run with ``dag.test()`` against the emulator (connections by default ids)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.sensors.task import GenMediaTaskSensor

PARAMS = {"image": "", "prompt": "a watercolor fox"}
IMG2IMG: dict[str, Any] = {
    "image": "{{ params.image }}",
    "prompt": "{{ params.prompt }}",
    "model_name": "sd_xl_base_1.0.safetensors",
    "image_num": 2,
    "seed": 1234,
    "response_image_type": "png",
    "enable_nsfw_detection": True,
    "poll_interval": 0.1,
}


def img2img_dag(dag_id: str, **operator_arguments: Any) -> DAG:
    """A DAG of one img2img task."""
    with DAG(dag_id, schedule=None, params=PARAMS) as dag:
        NovitaImg2ImgOperator(task_id="img2img", **IMG2IMG, **operator_arguments)
    return dag


deferrable_dag = img2img_dag("genmedia_system_img2img_deferrable", deferrable=True)
worker_dag = img2img_dag("genmedia_system_img2img_worker", deferrable=False)
# The first try is killed by its execution_timeout while the vendor still works; the retry must resume.
retry_dag = img2img_dag(
    "genmedia_system_img2img_retry",
    deferrable=False,
    retries=1,
    retry_delay=timedelta(0),
    execution_timeout=timedelta(seconds=2),
)

with DAG("genmedia_system_sensor", schedule=None, params=PARAMS) as sensor_dag:
    submitted = NovitaImg2ImgOperator(task_id="submit", wait_for_completion=False, **IMG2IMG)
    vendor_task = "{{ ti.xcom_pull(task_ids='submit', key='genmedia_task_id') }}"
    waits = [
        GenMediaTaskSensor(
            task_id=f"wait_{mode}", api="novita", genmedia_task_id=vendor_task, deferrable=deferrable, poke_interval=0.1
        )
        for mode, deferrable in (("deferred", True), ("poking", False))
    ]
    submitted >> waits


def png_base64(width: int = 256, height: int = 136) -> str:
    """A small PNG as base64: an input image given as bytes, as an upstream task may hand it over."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 60, 200)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


with DAG("genmedia_system_rendered", schedule=None, params=PARAMS) as rendered_dag:

    @task
    def load_image() -> str:
        """The input image as base64, through XCom."""
        return png_base64()

    settings: dict[str, Any] = {**IMG2IMG, "image_num": 1, "steps": 12, "strength": 0.35, "guidance_scale": 6.5}
    NovitaImg2ImgOperator(task_id="from_xcom", **{**settings, "image": load_image()})
    NovitaImg2ImgOperator.partial(task_id="mapped", **{k: v for k, v in settings.items() if k != "image"}).expand(
        image=[png_base64(192, 128)]
    )
