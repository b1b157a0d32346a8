"""Restyle a product shot and let a person decide on the outputs the NSFW filter set aside.

`restyle` asks Novita img2img for two images with NSFW detection. `nsfw_filter` keeps those scored at or below 50
and sets the others aside (`set_aside` lists them); an output the vendor could not check is scored by the local
model of the ``nsfw`` extra instead. Each one
becomes a request in **Browse > Required Actions** (`review`, mapped): the image is shown in the request, with its
NSFW score and the reason, and a reviewer answers *Approve* or *Reject*. `publish` then writes the safe outputs and
the approved ones to `params.destination` (any `ObjectStoragePath` URI: `file://...`, `s3://bucket/prefix`), with a
manifest listing what was rejected and by whom. When nothing is set aside, nobody is asked and `review` shows as
skipped.

A request left unanswered takes *Reject* after 50 minutes, while the vendor's signed links still work (Novita's last
one hour). Answer from the UI, or through the REST API:
`PATCH /api/v2/dags/genmedia_human_review/dagRuns/{run_id}/taskInstances/review/{map_index}/hitlDetails` with
`{"chosen_options": ["Approve"]}`.

Reads the `novita_default` connection. With the local emulator, a prompt with the word `nsfw` makes every image
score 97.5, so each one goes to review.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.operators.nsfw import NsfwFilterOperator
from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.operators.review import MediaReviewOperator
from airflow_provider_genmedia.review import review_items
from airflow_provider_genmedia.trust import DESTINATION_PARAM_PATTERN, IMAGE_PARAM_PATTERN

DATA = Path(__file__).parent / "data"
DEFAULT_DESTINATION = (Path(tempfile.gettempdir()) / "genmedia" / "reviewed-product-shots").as_uri()
#: Unset: the vendor's own adaptive schedule. The demo and `make up` set a short fixed interval for the emulator.
POLL_INTERVAL = float(os.environ.get("GENMEDIA_POLL_INTERVAL", "0")) or None

with DAG(
    dag_id="genmedia_human_review",
    description="Novita img2img; outputs the NSFW filter sets aside go to a human reviewer before publishing",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "image": Param(
            str(DATA / "product.png"),
            type="string",
            pattern=IMAGE_PARAM_PATTERN,
            description="Path, http(s) URL or URI",
        ),
        "prompt": Param(
            "studio product photo of a ceramic mug, neon night light", type="string", minLength=1, maxLength=1024
        ),
        "destination": Param(
            DEFAULT_DESTINATION, type="string", pattern=DESTINATION_PARAM_PATTERN, description="ObjectStoragePath URI"
        ),
    },
    tags=["genmedia", "example"],
) as human_review:
    restyled = NovitaImg2ImgOperator(
        task_id="restyle",
        image="{{ params.image }}",
        prompt="{{ params.prompt }}",
        model_name="sd_xl_base_1.0.safetensors",
        image_num=2,
        steps=25,
        strength=0.6,
        response_image_type="png",
        enable_nsfw_detection=True,
        nsfw_detection_level=1,
        fit_image=True,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    # [START howto_operator_media_review]
    safe = NsfwFilterOperator(task_id="nsfw_filter", result=restyled.output, threshold=50.0, scorer="local")

    @task
    def set_aside(filtered: dict[str, Any]) -> list[dict[str, Any]]:
        """One review request for each output the filter set aside (Airflow maps over return values only)."""
        return review_items(filtered)

    review = MediaReviewOperator.partial(task_id="review", response_timeout=timedelta(minutes=50)).expand(
        item=set_aside(safe.output)
    )
    PublishMediaOperator(
        task_id="publish",
        result=safe.output,
        reviews=review.output,
        destination="{{ params.destination }}",
        outlets=[Asset("genmedia_reviewed_product_shots")],
    )
    # [END howto_operator_media_review]
