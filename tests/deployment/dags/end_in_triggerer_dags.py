"""DAGs of the deployment tests of a task ended by its trigger, or resumed on a worker when it must be."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.operators.video import JimengVideoOperator
from airflow_provider_genmedia.sensors.task import GenMediaTaskSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: The img2img request of both DAGs but its prompt, on the API's own adaptive schedule (no poll_interval).
IMG2IMG: dict[str, object] = {
    "image": str(Path(__file__).parent / "data" / "product.png"),
    "model_name": "sd_xl_base_1.0.safetensors",
    "image_num": 1,
    "response_image_type": "png",
    "fit_image": True,
    "deferrable": True,
}


@task
def read_result(result: dict[str, object]) -> str:
    """What a downstream task does with a result: read it as the mapping it is (a string would fail here)."""
    return f"{result['api']} task {result['task_id']}: {result['status']}"


with DAG("deploy_end_in_triggerer", schedule=None, start_date=START, catchup=False):
    restyled = NovitaImg2ImgOperator(task_id="restyle", prompt="a watercolor teapot", **IMG2IMG)
    waited = GenMediaTaskSensor(
        task_id="wait",
        api="jimeng",
        genmedia_task_id="{{ ti.xcom_pull(task_ids='submit', key='genmedia_task_id', map_indexes=-1) }}",
        deferrable=True,
        start_from_trigger=True,
    )
    JimengVideoOperator(task_id="submit", prompt="a paper plane", wait_for_completion=False) >> waited
    read_result.override(task_id="read_job")(restyled.output)
    read_result.override(task_id="read_sensor")(waited.output)

with DAG("deploy_vendor_failure", schedule=None, start_date=START, catchup=False):
    NovitaImg2ImgOperator(
        task_id="restyle", prompt="a watercolor kettle", retries=1, retry_delay=timedelta(seconds=1), **IMG2IMG
    )
