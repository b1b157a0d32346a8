"""DAGs that the deployment tests run on a real scheduler and triggerer (copied next to the example DAGs)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.operators.video import BailianVideoOperator, JimengVideoOperator
from airflow_provider_genmedia.sensors.task import GenMediaTaskSensor

PRODUCT_SHOT = str(Path(__file__).parent / "data" / "product.png")
START = pendulum.datetime(2026, 1, 1, tz="UTC")
FAST_POLLS = 0.5
IMG2IMG: dict[str, Any] = {
    "image": PRODUCT_SHOT,
    "model_name": "sd_xl_base_1.0.safetensors",
    "image_num": 1,
    "response_image_type": "png",
    "fit_image": True,
}
RETRY_SOON = {"retry_delay": timedelta(seconds=1)}


def prompts(count: int, subject: str) -> list[str]:
    """``count`` distinct prompts, so that every mapped task makes a different request."""
    return [f"{subject}, take {index}" for index in range(count)]


with DAG("deploy_img2img_mapped", schedule=None, start_date=START, catchup=False):
    NovitaImg2ImgOperator.partial(task_id="restyle", deferrable=True, poll_interval=FAST_POLLS, **IMG2IMG).expand(
        prompt=prompts(10, "a watercolor mug")
    )

with DAG("deploy_sensor", schedule=None, start_date=START, catchup=False):
    submitted = JimengVideoOperator(task_id="submit", prompt="a paper boat on a pond", wait_for_completion=False)
    submitted >> [
        GenMediaTaskSensor(
            task_id=task_id,
            api="jimeng",
            genmedia_task_id=f"{{{{ ti.xcom_pull(task_ids='submit', key='genmedia_task_id'{pull}) }}}}",
            deferrable=True,
            poll_interval=FAST_POLLS,
            start_from_trigger=True,
        )
        # Starts in the triggerer; the second pulls every map index, so it defers from a worker instead.
        for task_id, pull in (("wait", ", map_indexes=-1"), ("wait_from_worker", ""))
    ]

with DAG("deploy_video_waits", schedule=None, start_date=START, catchup=False):
    JimengVideoOperator.partial(task_id="jimeng", deferrable=True, poll_interval=1.0).expand(
        prompt=prompts(4, "a kite over the dunes")
    )
    BailianVideoOperator.partial(
        task_id="wan", model="wan2.6-t2v", size="1280*720", duration=5, deferrable=True, poll_interval=1.0
    ).expand(prompt=prompts(4, "a lighthouse at night"))

with DAG("deploy_worker_wait", schedule=None, start_date=START, catchup=False):
    JimengVideoOperator(
        task_id="jimeng",
        prompt="a heron takes off",
        deferrable=False,
        poll_interval=FAST_POLLS,
        retries=1,
        **RETRY_SOON,
    )

with DAG("deploy_vendor_faults", schedule=None, start_date=START, catchup=False):
    JimengVideoOperator.partial(
        task_id="jimeng",
        deferrable=True,
        poll_interval=FAST_POLLS,
        on_uncertain_submit="resubmit",
        retries=4,
        **RETRY_SOON,
    ).expand(prompt=prompts(20, "a fox in the snow"))

with DAG("deploy_gateway_502", schedule=None, start_date=START, catchup=False):
    JimengVideoOperator(task_id="jimeng", prompt="a tram in the rain", retries=2, **RETRY_SOON)

with DAG("deploy_uncertain_submit", schedule=None, start_date=START, catchup=False):
    JimengVideoOperator(task_id="fail", prompt="a red balloon", deferrable=True, retries=2, **RETRY_SOON)
    JimengVideoOperator(
        task_id="resubmit",
        prompt="a blue balloon",
        deferrable=True,
        poll_interval=FAST_POLLS,
        on_uncertain_submit="resubmit",
        retries=1,
        **RETRY_SOON,
    )

with DAG("deploy_budget", schedule=None, start_date=START, catchup=False):
    # 20 paid submits on a connection whose max_jobs_per_day is 7 (conf names it: one budget per scenario).
    NovitaImg2ImgOperator.partial(
        task_id="restyle",
        conn_id="{{ dag_run.conf['conn_id'] }}",
        deferrable=True,
        poll_interval=FAST_POLLS,
        retries=2,
        **RETRY_SOON,
        **IMG2IMG,
    ).expand(prompt=prompts(20, "a desk lamp in brass"))

# Vendor outages in the middle of a job (test_vendor_faults.py): one ridden out inside the wait (the default budget),
# one longer than its connection's max_outage_seconds (the test creates gptge_short_outage), resumed by the retry.
with DAG("deploy_poll_outage", schedule=None, start_date=START, catchup=False):
    JimengVideoOperator(
        task_id="jimeng",
        prompt="a glider over the ridge",
        deferrable=True,
        poll_interval=FAST_POLLS,
        retries=1,
        **RETRY_SOON,
    )

with DAG("deploy_outage_past_budget", schedule=None, start_date=START, catchup=False):
    BailianVideoOperator(
        task_id="wan",
        model="wan2.6-t2v",
        prompt="a glider over the ridge",
        size="1280*720",
        duration=5,
        conn_id="gptge_short_outage",
        deferrable=True,
        poll_interval=FAST_POLLS,
        retries=1,
        **RETRY_SOON,
    )

with DAG("deploy_held_out", schedule=None, start_date=START, catchup=False):
    # Six img2img jobs as a new user writes them (default polling), under rate limits, server errors and kills.
    NovitaImg2ImgOperator.partial(
        task_id="img", deferrable=True, retries=4, **RETRY_SOON, **{**IMG2IMG, "image_num": 2}
    ).expand(prompt=prompts(6, "a ceramic vase on linen"))
