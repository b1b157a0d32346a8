"""A batch of marketing clips: one Jimeng and one Wan (Ali Bailian) video per prompt, NSFW-filtered, published.

Prompts come from ``data/prompts.json``; each becomes a mapped task (``.expand``), so adding a prompt adds a
job. Every video task runs in the ``genmedia_video`` pool, which caps how many jobs are in flight at the
vendor at once. Create it with deferred tasks counted, since a waiting job still holds a vendor slot::

    airflow pools set genmedia_video 2 "gpt.ge video jobs in flight" --include-deferred

Neither vendor scores its videos for NSFW content, so each video is scored on the worker by the local model of the
``nsfw`` extra (``pip install "airflow-provider-genmedia[nsfw]"``): about one frame per second, 16 at most, the
video's score being its worst frame's. A video scored above `NSFW_THRESHOLD` (open_nsfw's authors: below 20 likely
safe, above 80 likely NSFW; fit it on your own videos) is set aside. On Airflow 3.1+ each one becomes a request in
**Browse > Required Actions** (`review`), its worst frame shown when ``params.review_frames`` is a store that signs
links (``s3://...``), and the approved ones are published with the others; on Airflow 3.0, which has no human
review, they stay out. Either way the manifest lists what stayed out and why. A file that is not a playable video
is never published. Each run publishes into a folder of its own, ``<destination>/<run_id>/<vendor>``, so two
runs never mix their files or manifests.

It has no schedule: it pays for six videos, so it runs only when someone triggers it, and unpausing it starts
nothing. To run your copy daily, give it one, e.g. ``schedule="0 6 * * *"``; then, with ``catchup=False``, Airflow
starts the run of the latest due time as soon as the DAG is unpaused, and Airflow 3's Trigger form unpauses the DAG
unless its "Unpause ... on trigger" box is cleared.

Reads the ``gptge_default`` connection; ``make demo DAG=genmedia_batch_video`` points it at the local emulator.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_genmedia.operators.nsfw import NsfwFilterOperator
from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.operators.review import HUMAN_REVIEW_AVAILABLE, MediaReviewOperator
from airflow_provider_genmedia.operators.video import BailianVideoOperator, JimengVideoOperator
from airflow_provider_genmedia.review import apply_reviews, review_items
from airflow_provider_genmedia.trust import DESTINATION_PARAM_PATTERN

DATA = Path(__file__).parent / "data"
PROMPTS: list[dict[str, str]] = json.loads((DATA / "prompts.json").read_text())
VIDEO_POOL = "genmedia_video"
DEFAULT_DESTINATION = (Path(tempfile.gettempdir()) / "genmedia" / "batch-videos").as_uri()
#: Unset: each vendor's own adaptive schedule. The demo sets a short fixed interval for the emulator.
POLL_INTERVAL = float(os.environ.get("GENMEDIA_POLL_INTERVAL", "0")) or None
BATCH_VIDEOS = Asset("genmedia_batch_videos")
NSFW_THRESHOLD = 50.0

with DAG(
    dag_id="genmedia_batch_video",
    description="A Jimeng and a Wan (Ali Bailian) video per prompt, in a pool, NSFW-filtered, published; run on demand",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "destination": Param(
            DEFAULT_DESTINATION, type="string", pattern=DESTINATION_PARAM_PATTERN, description="ObjectStoragePath URI"
        ),
        "review_frames": Param(
            f"{DEFAULT_DESTINATION}/review-frames",
            type="string",
            pattern=DESTINATION_PARAM_PATTERN,
            description="Where reviewers' frames are stored",
        ),
    },
    tags=["genmedia", "example"],
) as batch_video:
    # [START howto_operator_jimeng_video]
    jimeng = JimengVideoOperator.partial(
        task_id="jimeng_video", pool=VIDEO_POOL, deferrable=True, poll_interval=POLL_INTERVAL
    ).expand_kwargs(PROMPTS)
    # [END howto_operator_jimeng_video]
    # [START howto_operator_bailian_video]
    wan = BailianVideoOperator.partial(
        task_id="wan_video",
        pool=VIDEO_POOL,
        model="wan2.6-t2v",
        size="1280*720",
        duration=5,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    ).expand(prompt=[item["prompt"] for item in PROMPTS])
    # [END howto_operator_bailian_video]
    # [START howto_operator_nsfw_filter_videos]
    filtered = {
        vendor: NsfwFilterOperator.partial(task_id=f"nsfw_{vendor}", scorer="local", threshold=NSFW_THRESHOLD).expand(
            result=videos.output
        )
        for vendor, videos in (("jimeng", jimeng), ("wan", wan))
    }
    # [END howto_operator_nsfw_filter_videos]
    results: dict[str, Any] = {vendor: safe.output for vendor, safe in filtered.items()}
    # [START howto_operator_media_review_batch]
    if HUMAN_REVIEW_AVAILABLE:

        @task
        def set_aside(jimeng_results: list[dict[str, Any]], wan_results: list[dict[str, Any]]) -> list[dict[str, Any]]:
            """One review request for each video the filters set aside, across the batch."""
            return review_items(*jimeng_results, *wan_results)

        reviews = MediaReviewOperator.partial(
            task_id="review", preview_destination="{{ params.review_frames }}", response_timeout=timedelta(hours=20)
        ).expand(item=set_aside(results["jimeng"], results["wan"]))

        @task(trigger_rule="none_failed_min_one_success")  # it runs when nothing needed a review, too
        def reviewed(filtered: list[dict[str, Any]], reviews: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
            """Each filtered result with the videos approved in review added back."""
            return [apply_reviews(result, list(reviews or [])).model_dump(mode="json") for result in filtered]

        results = {
            vendor: reviewed.override(task_id=f"reviewed_{vendor}")(output, reviews.output)
            for vendor, output in results.items()
        }
    # [END howto_operator_media_review_batch]
    # [START howto_operator_publish_media_mapped]
    for vendor, output in results.items():
        PublishMediaOperator.partial(
            task_id=f"publish_{vendor}",
            destination=f"{{{{ params.destination }}}}/{{{{ run_id }}}}/{vendor}",
            outlets=[BATCH_VIDEOS],
        ).expand(result=output)
    # [END howto_operator_publish_media_mapped]
