"""A DAG that the system tests run with ``dag.test()``: img2img with NSFW detection, the filter, then publishing."""

from __future__ import annotations

import os

from airflow.sdk import DAG

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.operators.nsfw import NsfwFilterOperator
from airflow_provider_genmedia.operators.publish import PublishMediaOperator

#: Fixed while the DAG is parsed (the Asset URI must be), under the test session's throwaway AIRFLOW_HOME.
PUBLISHED = f"file://{os.environ.get('AIRFLOW_HOME', '/tmp/airflow')}/published"

with DAG("genmedia_system_publish", schedule=None, params={"image": "", "prompt": "a watercolor fox"}) as publish_dag:
    generated = NovitaImg2ImgOperator(
        task_id="img2img",
        image="{{ params.image }}",
        prompt="{{ params.prompt }}",
        model_name="sd_xl_base_1.0.safetensors",
        image_num=2,
        seed=1234,
        response_image_type="png",
        enable_nsfw_detection=True,
        poll_interval=0.1,
    )
    safe = NsfwFilterOperator(task_id="nsfw_filter", result=generated.output, threshold=50.0)
    PublishMediaOperator(task_id="publish", result=safe.output, destination=PUBLISHED)
