"""A talking-avatar video from a portrait and a voice recording, published without the vendor's watermark.

Give ``avatar_url`` (an image or a short video of a face) and ``audio_url`` (the speech) as URLs the vendor can
fetch. Reads the ``gptge_default`` connection; ``make demo DAG=genmedia_avatar`` points it at the local emulator
(which only checks that the URLs are well formed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, Param

from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.operators.video import AvatarVideoOperator

DEFAULT_DESTINATION = (Path(tempfile.gettempdir()) / "genmedia" / "avatars").as_uri()
#: Unset: the vendor's own adaptive schedule. The demo sets a short fixed interval for the emulator.
POLL_INTERVAL = float(os.environ.get("GENMEDIA_POLL_INTERVAL", "0")) or None

with DAG(
    dag_id="genmedia_avatar",
    description="A talking-avatar video from a portrait and a voice recording, published without watermark",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "avatar_url": Param("https://example.com/presenter/portrait.png", type="string", format="uri"),
        "audio_url": Param("https://example.com/presenter/welcome.mp3", type="string", format="uri"),
        "destination": Param(DEFAULT_DESTINATION, type="string", description="ObjectStoragePath URI"),
    },
    tags=["genmedia", "example"],
) as avatar:
    talking = AvatarVideoOperator(
        task_id="talking_avatar",
        avatar_url="{{ params.avatar_url }}",
        audio_url="{{ params.audio_url }}",
        no_watermark=True,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    PublishMediaOperator(
        task_id="publish",
        result=talking.output,
        destination="{{ params.destination }}",
        outlets=[Asset("genmedia_avatar_videos")],
    )
