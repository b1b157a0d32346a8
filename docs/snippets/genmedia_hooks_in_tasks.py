"""Snippets of the docs' page "Using the hooks in your own tasks" (docs/howto/hooks.md): a ``@task`` that submits a
Novita txt2img job through the hook, the sensor that waits for it, and a ``@task`` that reads a task's state.

Not an example DAG (``make up`` and ``make demo`` do not load it); its task functions run against the emulator in
``make test`` (tests/integration/test_docs_hooks_snippet.py), so that what the page shows works as written.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.hooks.genmedia import client_for
from airflow_provider_genmedia.sensors.task import GenMediaTaskSensor


# [START howto_hook_submit]
@task(retries=0)  # a plain task is not pay-once: a retry would submit, and pay for, a second job
def submit_txt2img(prompt: str) -> str:
    """Submit one Novita txt2img job on ``novita_default`` and return the vendor's task id."""
    api = get_api("novita")
    body = {
        "extra": {"response_image_type": "png"},
        "request": {
            "model_name": "sd_xl_base_1.0.safetensors",
            "prompt": prompt,
            "width": 512,
            "height": 512,
            "image_num": 1,
            "steps": 20,
            "guidance_scale": 7.5,
            "sampler_name": "Euler a",
        },
    }
    # prepare checks the body once against the API's request model, before anything is sent: a bad field raises
    # GenMediaValidationError naming it. The API's client (its hook bound to the API) sends the Submission as it is.
    submission = api.prepare(body, "/v3/async/txt2img")
    return client_for(api).submit(submission)


# [END howto_hook_submit]


# [START howto_hook_read]
@task
def read_task(genmedia_task_id: str) -> dict[str, Any]:
    """The task's state now (one read, transient failures retried): status, progress, outputs once it ended."""
    result = client_for(get_api("novita")).get_result(genmedia_task_id)
    return {"status": result.status.value, "progress": result.progress, "urls": [o.url for o in result.outputs]}


# [END howto_hook_read]


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["genmedia", "docs"])
def genmedia_hooks_in_tasks() -> None:
    """Submit with the hook in a task of your own, wait in the triggerer, then read the task again."""
    # [START howto_hook_wait]
    genmedia_task_id = submit_txt2img("a lighthouse on a cliff at dawn, oil painting")
    waited = GenMediaTaskSensor(task_id="wait", api="novita", genmedia_task_id=genmedia_task_id, deferrable=True)
    # [END howto_hook_wait]
    waited >> read_task(genmedia_task_id)


genmedia_hooks_in_tasks()
