"""DAGs of the CeleryExecutor deployment tests (copied next to the example DAGs, as the others)."""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator

BATCH = 20

# A batch as a team schedules one: one img2img job per prompt, mapped; each task submits on whichever worker takes it
# and waits in whichever triggerer takes its trigger.
with DAG("distributed_img2img_batch", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    NovitaImg2ImgOperator.partial(
        task_id="restyle",
        image=str(Path(__file__).parent / "data" / "product.png"),
        model_name="sd_xl_base_1.0.safetensors",
        image_num=1,
        response_image_type="png",
        fit_image=True,
        deferrable=True,
        poll_interval=0.5,
    ).expand(prompt=[f"a ceramic mug in the style of print {index}" for index in range(BATCH)])
