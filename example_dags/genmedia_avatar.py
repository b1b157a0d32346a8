"""A talking-avatar video from a portrait and a voice recording, NSFW-checked, published without the vendor's watermark.

Give ``avatar_url`` (an image or a short video of a face) and ``audio_url`` (the speech) as URLs the vendor can
fetch. The vendor does not score the video, so the local model of the ``nsfw`` extra does (sampled frames, the
worst one counts): a video scored above 50 is not published and, on Airflow 3.1+, goes to a reviewer in
**Browse > Required Actions** (`review`), who may approve it.

Reads the ``gptge_default`` connection; ``make demo DAG=genmedia_avatar`` points it at the local emulator (which
only checks that the URLs are well formed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_genmedia.operators.nsfw import NsfwFilterOperator
from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.operators.review import HUMAN_REVIEW_AVAILABLE, MediaReviewOperator
from airflow_provider_genmedia.operators.video import AvatarVideoOperator
from airflow_provider_genmedia.review import review_items
from airflow_provider_genmedia.trust import DESTINATION_PARAM_PATTERN, LINK_PARAM_PATTERN

DEFAULT_DESTINATION = (Path(tempfile.gettempdir()) / "genmedia" / "avatars").as_uri()
#: Unset: the vendor's own adaptive schedule. The demo sets a short fixed interval for the emulator.
POLL_INTERVAL = float(os.environ.get("GENMEDIA_POLL_INTERVAL", "0")) or None

with DAG(
    dag_id="genmedia_avatar",
    description="A talking-avatar video from a portrait and a voice recording, NSFW-checked, published unwatermarked",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "avatar_url": Param(
            "https://example.com/presenter/portrait.png", type="string", format="uri", pattern=LINK_PARAM_PATTERN
        ),
        "audio_url": Param(
            "https://example.com/presenter/welcome.mp3", type="string", format="uri", pattern=LINK_PARAM_PATTERN
        ),
        "destination": Param(
            DEFAULT_DESTINATION, type="string", pattern=DESTINATION_PARAM_PATTERN, description="ObjectStoragePath URI"
        ),
    },
    tags=["genmedia", "example"],
) as avatar:
    # [START howto_operator_avatar_video]
    talking = AvatarVideoOperator(
        task_id="talking_avatar",
        avatar_url="{{ params.avatar_url }}",
        audio_url="{{ params.audio_url }}",
        no_watermark=True,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_operator_avatar_video]
    safe = NsfwFilterOperator(task_id="nsfw_filter", result=talking.output, scorer="local")
    reviews = None
    if HUMAN_REVIEW_AVAILABLE:
        reviews = (
            MediaReviewOperator.partial(task_id="review", preview_destination="{{ params.destination }}/review-frames")
            .expand(item=task(review_items, task_id="set_aside")(safe.output))
            .output
        )
    PublishMediaOperator(
        task_id="publish",
        result=safe.output,
        reviews=reviews,
        destination="{{ params.destination }}",
        outlets=[Asset("genmedia_avatar_videos")],
    )
