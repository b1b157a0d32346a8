"""The DAG of tests/deployment/test_trust.py: one image made on the emulator, then published from its link."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.operators.publish import PublishMediaOperator

with DAG("deploy_link_policy", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    made = NovitaImg2ImgOperator(
        task_id="make",
        prompt="a blue teapot",
        image=str(Path(__file__).parent / "data" / "product.png"),
        model_name="sd_xl_base_1.0.safetensors",
        image_num=1,
        response_image_type="png",
        fit_image=True,
        poll_interval=0.5,
    )
    # retries=1: a refused link must fail the task on its first try all the same.
    PublishMediaOperator(
        task_id="publish",
        result=made.output,
        destination="{{ dag_run.conf['destination'] }}",
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
