"""Snippets of the docs' how-to pages for operators no example DAG uses: any Novita endpoint, and the sensor.

Not an example DAG (``make up`` and ``make demo`` do not load it); a DAG file all the same, run end to end on the
emulator by ``make test`` (tests/system/test_docs_snippets.py), so that what the pages show works as written. The
docs include it between ``# [START ...]`` and ``# [END ...]`` markers.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_genmedia.operators.novita import NovitaTaskOperator
from airflow_provider_genmedia.sensors.task import GenMediaTaskSensor

with DAG(
    dag_id="genmedia_novita_tasks",
    description="Any Novita /v3/async endpoint with NovitaTaskOperator, and a sensor on a task submitted elsewhere",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"prompt": Param("a lighthouse on a cliff at dawn, oil painting", type="string", minLength=1)},
    tags=["genmedia", "docs"],
):
    # [START howto_operator_novita_task]
    txt2img = NovitaTaskOperator(
        task_id="txt2img",
        endpoint="txt2img",
        body={
            "extra": {"response_image_type": "png", "enable_nsfw_detection": True},
            "request": {
                "model_name": "sd_xl_base_1.0.safetensors",
                "prompt": "{{ params.prompt }}",
                "width": 1024,
                "height": 768,
                "image_num": 2,
                "steps": 20,
                "guidance_scale": 7.5,
                "sampler_name": "Euler a",
            },
        },
        deferrable=True,
    )
    # [END howto_operator_novita_task]

    # [START howto_sensor_genmedia_task]
    submit = NovitaTaskOperator(
        task_id="submit",
        endpoint="wan-t2v",
        body={"prompt": "{{ params.prompt }}", "width": 832, "height": 480},
        wait_for_completion=False,  # returns the vendor's task id right after the paid submit
    )
    wait = GenMediaTaskSensor(
        task_id="wait",
        api="novita",
        # map_indexes=-1 lets Airflow 3.3's triggerer render the template itself (start_from_trigger)
        genmedia_task_id="{{ ti.xcom_pull(task_ids='submit', key='genmedia_task_id', map_indexes=-1) }}",
        deferrable=True,
        timeout=timedelta(hours=1).total_seconds(),
    )
    submit >> wait
    # [END howto_sensor_genmedia_task]
