"""Video DAGs that the system tests run with ``dag.test()`` against the emulator (connections by default ids)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Context

from airflow_provider_genmedia.operators.video import AvatarVideoOperator, BailianVideoOperator, JimengVideoOperator

PARAMS = {"image": "", "prompt": "a paper boat drifts down a rainy street"}
PROMPT = "{{ params.prompt }}"
IMAGE_URL = "https://example.com/first-frame.png"
AVATAR_URL = "https://example.com/face.png"
AUDIO_URL = "https://example.com/hello.mp3"
MAPPED_PROMPTS = ["a lighthouse at dusk", "a fox in fresh snow", "a tram crossing a bridge"]
#: One try and no more: a vendor verdict or bad input must fail the task without using the retry.
ONE_TRY: dict[str, Any] = {"retries": 1, "retry_delay": timedelta(0)}
#: The emulator fails or expires a task whose prompt holds the word ``fail`` or ``expire``.
FAILING, EXPIRING = "a boat that will fail to sail", "a boat left to expire"
DEFERRED: dict[str, Any] = {"deferrable": True, "poll_interval": 0.1}
TEXT2VIDEO: dict[str, Any] = {"model": "wan2.6-t2v", "size": "1280*720"}

#: The error each failed task ended with, by task id (``on_failure_callback`` runs in this process under dag.test).
FAILURES: dict[str, str] = {}


def record_failure(context: Context) -> None:
    """Keep the failed task's error for the tests to read."""
    FAILURES[context["ti"].task_id] = str(context.get("exception"))


def video_dag(dag_id: str, *, deferrable: bool, jimeng_image: str, bailian_image: str, avatar: dict[str, Any]) -> DAG:
    """Each operator on each route: Jimeng and Bailian text and image, and one avatar."""
    waiting: dict[str, Any] = {"deferrable": deferrable, "poll_interval": 0.1}
    with DAG(dag_id, schedule=None, params=PARAMS) as dag:
        JimengVideoOperator(task_id="jimeng_text", prompt=PROMPT, aspect_ratio="9:16", seed=5, **waiting)
        JimengVideoOperator(task_id="jimeng_image", prompt=PROMPT, image=jimeng_image, **waiting)
        BailianVideoOperator(task_id="bailian_text", model="wan2.6-t2v", prompt=PROMPT, size="1280*720", **waiting)
        BailianVideoOperator(
            task_id="bailian_image",
            model="wan2.6-i2v",
            prompt=PROMPT,
            image=bailian_image,
            resolution="720P",
            seed=11,
            **waiting,
        )
        AvatarVideoOperator(task_id="avatar", avatar_url=AVATAR_URL, **avatar, **waiting)
    return dag


deferrable_dag = video_dag(
    "genmedia_system_video_deferrable",
    deferrable=True,
    jimeng_image="{{ params.image }}",
    bailian_image=IMAGE_URL,
    avatar={"audio_url": AUDIO_URL, "no_watermark": True},
)
with deferrable_dag:
    JimengVideoOperator.partial(task_id="jimeng_mapped", **DEFERRED).expand(prompt=MAPPED_PROMPTS)

worker_dag = video_dag(
    "genmedia_system_video_worker",
    deferrable=False,
    jimeng_image=IMAGE_URL,
    bailian_image="{{ params.image }}",
    avatar={"use_voice": {"voice_engine_id": "nina", "language": "en", "text": PROMPT}},
)

with DAG("genmedia_system_video_one_task", schedule=None, params=PARAMS) as one_task_dag:
    JimengVideoOperator(task_id="jimeng_text", prompt=PROMPT, **DEFERRED)

with DAG(
    "genmedia_system_video_failures",
    schedule=None,
    default_args={**ONE_TRY, "on_failure_callback": record_failure},
) as failures_dag:
    JimengVideoOperator(task_id="jimeng_fail", prompt=FAILING, **DEFERRED)
    BailianVideoOperator(task_id="bailian_fail", prompt=FAILING, **TEXT2VIDEO, **DEFERRED)
    AvatarVideoOperator(
        task_id="avatar_fail", avatar_url=AVATAR_URL, audio_url="https://example.com/fail.mp3", **DEFERRED
    )
    JimengVideoOperator(task_id="jimeng_expire", prompt=EXPIRING, **DEFERRED)
    BailianVideoOperator(task_id="bailian_expire", prompt=EXPIRING, **TEXT2VIDEO, **DEFERRED)

with DAG(
    "genmedia_system_video_invalid",
    schedule=None,
    default_args={**ONE_TRY, "on_failure_callback": record_failure},
) as invalid_dag:
    JimengVideoOperator(task_id="jimeng_long_prompt", prompt="a boat " * 30)
    BailianVideoOperator(
        task_id="bailian_bad_duration", model="wan2.6-t2v", prompt="a boat", size="1280*720", duration=7
    )
    AvatarVideoOperator(task_id="avatar_no_voice", avatar_url=AVATAR_URL)
