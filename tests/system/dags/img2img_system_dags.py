"""DAGs that the system tests run with ``dag.test()`` against the emulator (connections by default ids)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG

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
