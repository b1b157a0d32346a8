"""A daily batch of marketing clips: one Jimeng and one Wan (Ali Bailian) video per prompt, all published.

Prompts come from ``data/prompts.json``; each becomes a mapped task (``.expand``), so adding a prompt adds a
job. Every video task runs in the ``genmedia_video`` pool, which caps how many jobs are in flight at the
vendor at once. Create it with deferred tasks counted, since a waiting job still holds a vendor slot::

    airflow pools set genmedia_video 2 "gpt.ge video jobs in flight" --include-deferred

Reads the ``gptge_default`` connection; ``make demo DAG=genmedia_batch_video`` points it at the local emulator.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, Param

from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.operators.video import BailianVideoOperator, JimengVideoOperator

DATA = Path(__file__).parent / "data"
PROMPTS: list[dict[str, str]] = json.loads((DATA / "prompts.json").read_text())
VIDEO_POOL = "genmedia_video"
DEFAULT_DESTINATION = (Path(tempfile.gettempdir()) / "genmedia" / "daily-videos").as_uri()
#: Unset: each vendor's own adaptive schedule. The demo sets a short fixed interval for the emulator.
POLL_INTERVAL = float(os.environ.get("GENMEDIA_POLL_INTERVAL", "0")) or None
DAILY_VIDEOS = Asset("genmedia_daily_videos")

with DAG(
    dag_id="genmedia_batch_video",
    description="Daily batch: one Jimeng and one Wan (Ali Bailian) video per prompt, in a pool, all published",
    doc_md=__doc__,
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"destination": Param(DEFAULT_DESTINATION, type="string", description="ObjectStoragePath URI")},
    tags=["genmedia", "example"],
) as batch_video:
    jimeng = JimengVideoOperator.partial(
        task_id="jimeng_video", pool=VIDEO_POOL, deferrable=True, poll_interval=POLL_INTERVAL
    ).expand_kwargs(PROMPTS)
    wan = BailianVideoOperator.partial(
        task_id="wan_video",
        pool=VIDEO_POOL,
        model="wan2.6-t2v",
        size="1280*720",
        duration=5,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    ).expand(prompt=[item["prompt"] for item in PROMPTS])
    for vendor, videos in (("jimeng", jimeng), ("wan", wan)):
        PublishMediaOperator.partial(
            task_id=f"publish_{vendor}",
            destination=f"{{{{ params.destination }}}}/{{{{ ds }}}}/{vendor}",
            outlets=[DAILY_VIDEOS],
        ).expand(result=videos.output)
