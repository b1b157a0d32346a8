"""Restyle a product shot with Novita img2img, drop NSFW outputs, publish the rest, then draw a contact sheet.

``genmedia_img2img_pipeline`` submits one img2img job with NSFW detection (paid once, awaited in the triggerer),
keeps the outputs scored at or below 50 (by the vendor; one it could not check by the local model of the ``nsfw``
extra), and publishes them to ``params.destination`` (any ``ObjectStoragePath`` URI: ``file://...``,
``s3://bucket/prefix`` ...) with a manifest, updating the ``genmedia_restyled_product_shots`` Asset.
``genmedia_contact_sheet`` runs on that Asset and writes one image of thumbnails captioned with prompt, seed and
NSFW score next to the published files.

Both read the ``novita_default`` connection: ``make demo`` points it at the local emulator; point it at Novita
(and set your key) to run the same file for real.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task
from PIL import Image, ImageDraw

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.operators.nsfw import NsfwFilterOperator
from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from airflow_provider_genmedia.trust import DESTINATION_PARAM_PATTERN, IMAGE_PARAM_PATTERN

DATA = Path(__file__).parent / "data"
DEFAULT_DESTINATION = (Path(tempfile.gettempdir()) / "genmedia" / "restyled-product-shots").as_uri()
#: Unset: each vendor's own adaptive schedule. The demo sets a short fixed interval for the emulator.
POLL_INTERVAL = float(os.environ.get("GENMEDIA_POLL_INTERVAL", "0")) or None
RESTYLED_PRODUCT_SHOTS = Asset("genmedia_restyled_product_shots")
THUMBNAIL = 256
CAPTION_HEIGHT = 64

with DAG(
    dag_id="genmedia_img2img_pipeline",
    description="Restyle a product shot with Novita img2img, drop NSFW outputs and publish the rest",
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
            "studio product photo of a ceramic mug, soft morning light, watercolor style",
            type="string",
            minLength=1,
            maxLength=1024,
        ),
        "destination": Param(
            DEFAULT_DESTINATION, type="string", pattern=DESTINATION_PARAM_PATTERN, description="ObjectStoragePath URI"
        ),
    },
    tags=["genmedia", "example"],
) as img2img_pipeline:
    # [START howto_operator_novita_img2img]
    restyled = NovitaImg2ImgOperator(
        task_id="restyle",
        image="{{ params.image }}",
        prompt="{{ params.prompt }}",
        negative_prompt="blurry, low quality, watermark",
        model_name="sd_xl_base_1.0.safetensors",
        image_num=4,
        steps=25,
        guidance_scale=7.0,
        strength=0.6,
        response_image_type="png",
        enable_nsfw_detection=True,
        nsfw_detection_level=1,
        fit_image=True,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_operator_novita_img2img]
    # [START howto_operator_nsfw_filter]
    safe = NsfwFilterOperator(task_id="nsfw_filter", result=restyled.output, threshold=50.0, scorer="local")
    # [END howto_operator_nsfw_filter]
    # [START howto_operator_publish_media]
    PublishMediaOperator(
        task_id="publish",
        result=safe.output,
        destination="{{ params.destination }}",
        outlets=[RESTYLED_PRODUCT_SHOTS],
    )
    # [END howto_operator_publish_media]


CONTACT_SHEET_DOC = """Draw a contact sheet of every batch of restyled product shots.

Runs each time `genmedia_img2img_pipeline` publishes (it is scheduled on the `genmedia_restyled_product_shots`
Asset): reads the manifest named in the Asset event and writes `<api>_<task>.contact_sheet.png` beside the
published images, one thumbnail per image captioned with the prompt, the seed and the NSFW score.

It is unpaused from the start (`is_paused_upon_creation=False`): it costs nothing and runs only on what the pipeline
publishes, so a pipeline run triggered by hand makes its contact sheet without a second click.
"""


def _newest_manifest(destination: str) -> ObjectStoragePath:
    manifests = [path for path in ObjectStoragePath(destination).iterdir() if path.name.endswith(".manifest.json")]
    if not manifests:
        raise FileNotFoundError(f"no manifest under {destination}")
    return max(manifests, key=lambda path: path.stat().st_mtime)


def _caption(manifest: dict[str, Any], file: dict[str, Any]) -> list[str]:
    nsfw = file.get("nsfw") or {}
    score = f"{nsfw['confidence']:.1f}" if nsfw.get("confidence") is not None else "unchecked"
    prompt = textwrap.shorten(str(manifest.get("prompt") or ""), width=38, placeholder="...")
    return [prompt, f"seed {manifest.get('seed')}  #{file['index']}", f"NSFW score {score}"]


def draw_contact_sheet(manifest: dict[str, Any]) -> bytes:
    """One PNG of the manifest's images as thumbnails, each captioned with prompt, seed and NSFW score."""
    images = [file for file in manifest["files"] if file["kind"] == "image"]
    columns = min(len(images), 4) or 1
    rows = -(-len(images) // columns) or 1
    sheet = Image.new("RGB", (columns * THUMBNAIL, rows * (THUMBNAIL + CAPTION_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    for position, file in enumerate(images):
        left, top = (position % columns) * THUMBNAIL, (position // columns) * (THUMBNAIL + CAPTION_HEIGHT)
        with Image.open(io.BytesIO(ObjectStoragePath(file["uri"]).read_bytes())) as image:
            image.thumbnail((THUMBNAIL - 8, THUMBNAIL - 8))
            sheet.paste(image.convert("RGB"), (left + (THUMBNAIL - image.width) // 2, top + 4))
        for line, text in enumerate(_caption(manifest, file)):
            draw.text((left + 6, top + THUMBNAIL + 2 + line * 20), text, fill="black")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


with DAG(
    dag_id="genmedia_contact_sheet",
    description="A contact sheet of each batch genmedia_img2img_pipeline publishes (scheduled on its Asset)",
    doc_md=CONTACT_SHEET_DOC,
    schedule=[RESTYLED_PRODUCT_SHOTS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    params={
        "destination": Param(
            DEFAULT_DESTINATION, type="string", pattern=DESTINATION_PARAM_PATTERN, description="Where the manifests are"
        )
    },
    tags=["genmedia", "example"],
) as contact_sheet_dag:
    # [START howto_asset_triggered_dag]
    @task
    def contact_sheet(params: dict[str, Any], triggering_asset_events: Any = None) -> str:
        """Draw the contact sheet of the published batch (from the Asset event, else the newest manifest)."""
        events = [event for batch in (triggering_asset_events or {}).values() for event in batch]
        manifest_uri = next(
            (event.extra["manifest"] for event in reversed(events) if event.extra.get("manifest")), None
        )
        manifest_path = ObjectStoragePath(manifest_uri) if manifest_uri else _newest_manifest(params["destination"])
        manifest = json.loads(manifest_path.read_text())
        sheet = manifest_path.parent / manifest_path.name.replace(".manifest.json", ".contact_sheet.png")
        sheet.write_bytes(draw_contact_sheet(manifest))
        return str(sheet)

    # [END howto_asset_triggered_dag]

    contact_sheet()
