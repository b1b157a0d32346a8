"""A DAG whose input image and destinations come from params (templated), for tests/deployment/test_trust.py: a run
triggered with values outside ``[genmedia] input_roots`` and ``destination_roots`` must fail before paying."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.operators.publish import PublishMediaOperator

#: Retries that a refused value must not use: it fails the task on its first try.
RETRIES: dict[str, Any] = {"retries": 2, "retry_delay": timedelta(seconds=1)}
IMG2IMG: dict[str, Any] = {
    "prompt": "a watercolor mug",
    "model_name": "sd_xl_base_1.0.safetensors",
    "image_num": 1,
    "response_image_type": "png",
    "fit_image": True,
    "deferrable": True,
    "poll_interval": 0.5,
    **RETRIES,
}
#: A vendor result with no output: publishing it writes nothing, after checking its destination.
NOTHING = {"api": "novita", "task_id": "nothing", "status": "succeeded", "outputs": []}

with DAG(
    "deploy_roots",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"image": str(Path(__file__).parent / "data" / "product.png"), "destination": "file:///unset"},
):
    restyle = NovitaImg2ImgOperator(task_id="restyle", image="{{ params.image }}", **IMG2IMG)

    @task
    def images(params: dict[str, Any]) -> list[str]:
        """The image param, handed on through XCom to a mapped task."""
        return [params["image"]]

    NovitaImg2ImgOperator.partial(task_id="restyle_mapped", **IMG2IMG).expand(image=images())
    PublishMediaOperator(task_id="publish", result=restyle.output, destination="{{ params.destination }}", **RETRIES)
    PublishMediaOperator(
        task_id="publish_nothing", result=NOTHING, destination="{{ params.destination }}/nothing", **RETRIES
    )
