"""The emulator answers as the vendors' documents say, checked over plain HTTP: its own request schemas,
the Novita endpoint allowlist, links signed once from the task's end, and the documented answer variants."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from tests.emulator_fixtures import EmulatorControl, png_base64, sample_body

TXT2IMG = "/v3/async/txt2img"
IMG2IMG = "/v3/async/img2img"
#: What novita-client 0.7.1 sends for ``txt2img_v3``/``img2img_v3``: empty optional objects and nulls.
SDK_EXTRA = {
    "response_image_type": "jpeg",
    "enable_nsfw_detection": False,
    "nsfw_detection_level": 0,
    "custom_storage": {},
    "enterprise_plan": {},
}
SDK_NULLS = {"sd_vae": None, "negative_prompt": None, "loras": None, "embeddings": None, "clip_skip": None}


def expires(url: str) -> int:
    """The ``Expires`` of a signed link."""
    return int(parse_qs(urlsplit(url).query)["Expires"][0])


def sdk_img2img(**request: Any) -> dict[str, Any]:
    """An img2img body shaped like the SDK's, ``request`` fields changed."""
    _, body = sample_body(IMG2IMG)
    fields = {**body["request"], **SDK_NULLS, "extra": {}, "controlnet": None, "seed": -1, **request}
    return {"extra": SDK_EXTRA, "request": fields}


@pytest.mark.parametrize("endpoint", ["txt2imgg", "task-result", "img2img/extra", "TXT2IMG"])
def test_an_endpoint_novita_does_not_document_is_404(emulator: EmulatorControl, endpoint: str) -> None:
    response = emulator.call("POST", f"/v3/async/{endpoint}", json=sample_body(TXT2IMG)[1])

    assert response.status_code == 404
    assert response.json() | {"message": ""} == {"code": 404, "reason": "API_NOT_FOUND", "message": "", "metadata": {}}
    assert emulator.stats()["submits"]["novita"] == 0


def test_a_documented_endpoint_without_a_schema_takes_any_object(emulator: EmulatorControl) -> None:
    body = {"prompt": "a fox in the snow", "duration": "5", "aspect_ratio": "16:9"}
    task_id = emulator.submit("novita", "/v3/async/kling-v2.1-t2v-master", body)
    assert emulator.result("novita", task_id).outputs[0].kind == "video"
    assert emulator.call("POST", "/v3/async/kling-v2.1-t2v-master", json=["a", "list"]).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        sdk_img2img(),
        sdk_img2img(unknown_field=1, loras=[{"model_name": "x", "strength": 0.7, "weight": 2}]),
        {"extra": {"custom_storage": {}, "webhook": {}}, "request": sample_body(IMG2IMG)[1]["request"]},
        {"request": {**sample_body(IMG2IMG)[1]["request"], "negative_prompt": ""}},  # as in the img2img examples
    ],
    ids=["sdk-shape", "unknown-keys", "empty-objects", "empty-negative-prompt"],
)
def test_what_the_vendor_accepts_is_accepted(emulator: EmulatorControl, body: dict[str, Any]) -> None:
    response = emulator.call("POST", IMG2IMG, json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "body", "named", "reason"),
    [
        (IMG2IMG, sdk_img2img(steps=None), "request.steps", "INVALID_REQUEST_BODY"),
        (IMG2IMG, sdk_img2img(width="512"), "request.width", "INVALID_REQUEST_BODY"),
        (IMG2IMG, sdk_img2img(sampler_name="Euler b"), "request.sampler_name", "INVALID_REQUEST_BODY"),
        (IMG2IMG, sdk_img2img(loras=[{"model_name": "x", "strength": 0.5}] * 6), "request.loras", None),
        (IMG2IMG, sdk_img2img(image_base64="bm90IGFuIGltYWdl"), "request.image_base64", "INVALID_IMAGE_FORMAT"),
        (IMG2IMG, sdk_img2img(ip_adapters=[{}, {}]), "request.ip_adapters", None),
        (
            TXT2IMG,
            {"extra": {"custom_storage": {"aws_s3": {"bucket": "b"}}}, "request": sample_body(TXT2IMG)[1]["request"]},
            "extra.custom_storage.aws_s3.region",
            None,
        ),
        (TXT2IMG, {"extra": {"nsfw_detection_level": 3}}, "extra.nsfw_detection_level", None),
        ("/v3/async/txt2video", {"model_name": "m", "width": 512, "height": 512, "steps": 20}, "prompts", None),
        ("/v3/async/wan-t2v", {"prompt": "x", "width": 832, "height": 832}, "width x height", None),
    ],
)
def test_what_the_documents_forbid_is_400_naming_the_field(
    emulator: EmulatorControl, path: str, body: dict[str, Any], named: str, reason: str | None
) -> None:
    response = emulator.call("POST", path, json=body)

    assert response.status_code == 400
    assert named in response.json()["message"]
    assert response.json()["reason"] == (reason or "INVALID_REQUEST_BODY")
    assert emulator.stats()["submits"]["novita"] == 0


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/task/jimeng/image2video", {"prompt": "waves"}, "image_urls"),
        ("/task/jimeng/text2video", {"prompt": "waves", "aspect_ratio": "9:21"}, "aspect_ratio"),
        ("/task/jimeng/text2video", {"prompt": "waves", "seed": "7"}, "seed"),
        (
            "/task/bailian/text2video",
            {"model": "wan2.6-i2v", "input": {"prompt": "x"}, "parameters": {"size": "1280*720", "duration": 5}},
            "model",
        ),
        (
            "/task/bailian/image2video",
            {"model": "wan2.6-i2v", "input": {"prompt": "x", "img_url": "https://e.x/a.png"}, "parameters": {}},
            "parameters.duration",
        ),
        ("/avatar/generation", {"avatar_url": "https://e.x/a.png"}, "exactly one of audio_url"),
    ],
)
def test_gptge_bodies_are_checked_from_their_documents(
    emulator: EmulatorControl, path: str, body: dict[str, Any], named: str
) -> None:
    response = emulator.call("POST", path, json=body)
    assert response.status_code == 400
    assert named in response.text
    assert sum(emulator.stats()["submits"].values()) == 0


def test_the_emulator_accepts_what_the_vendor_accepts_but_our_client_refuses(emulator: EmulatorControl) -> None:
    """Jimeng takes both image fields (``binary_data_base64`` wins); our model refuses the pair, on the safe side."""
    body = {"prompt": "waves", "image_urls": ["https://e.x/a.png"], "binary_data_base64": [png_base64()]}
    assert emulator.call("POST", "/task/jimeng/image2video", json=body).status_code == 200
    with pytest.raises(GenMediaValidationError, match="not both"):
        get_api("jimeng").prepare(body, "/task/jimeng/image2video")


def test_a_queued_novita_task_answers_an_empty_extra_and_no_eta(emulator: EmulatorControl) -> None:
    emulator.configure(image_seconds=5)
    task_id = emulator.submit("novita", TXT2IMG, sample_body(TXT2IMG)[1])
    body = emulator.poll("novita", task_id).json()

    assert body["extra"] == {}
    assert (body["task"]["status"], body["task"]["eta"], body["task"]["progress_percent"]) == (
        "TASK_STATUS_QUEUED",
        0,
        0,
    )


def _end(api: str, body: dict[str, Any]) -> float:
    """The task's end time as the vendor reports it."""
    if api == "novita":
        return int(body["extra"]["debug_info"]["complete_time_ms"]) / 1000
    if api == "bailian":
        ended = datetime.strptime(body["output"]["end_time"], "%Y-%m-%d %H:%M:%S.%f")
        return ended.replace(tzinfo=timezone(timedelta(hours=8))).timestamp()
    return int(json.loads(body["data"]["resp_data"])["infer_ctx"]["time_stamp"])


@pytest.mark.parametrize(
    ("path", "lifetime", "slack"),
    [(TXT2IMG, 3600, 1.0), ("/task/bailian/text2video", 86400, 1.0), ("/task/jimeng/text2video", 3600, 2.0)],
)
def test_links_are_signed_once_from_the_tasks_end(
    emulator: EmulatorControl, path: str, lifetime: int, slack: float
) -> None:
    api, body = sample_body(path)
    task_id = emulator.submit(api, path, body)
    first = emulator.wait(api, task_id).json()
    emulator.configure(clock_offset=2)  # two seconds later: a re-signing emulator would now give a later expiry
    second = emulator.poll(api, task_id).json()

    urls = [output.url for output in get_api(api).parse_result(task_id, first).outputs]
    assert urls == [output.url for output in get_api(api).parse_result(task_id, second).outputs]
    end = _end(api, first)
    assert all(end + lifetime <= expires(url) <= math.ceil(end + lifetime + slack) for url in urls)


def test_avatar_links_are_signed_once_too(emulator: EmulatorControl) -> None:
    api, body = sample_body("/avatar/generation")
    task_id = emulator.submit(api, "/avatar/generation", body)
    first = emulator.wait(api, task_id).json()
    emulator.configure(clock_offset=2)
    second = emulator.poll(api, task_id).json()
    paths = ("work_video_path", "wm_work_video_path", "no_wm_work_video_path")
    assert [first[name] for name in paths] == [second[name] for name in paths]
    assert expires(first["work_video_path"]) <= math.ceil(time.time()) + 3600  # Expires is a whole second


def test_the_legacy_novita_submit_answer(emulator: EmulatorControl) -> None:
    emulator.configure(novita_submit_answer="legacy")
    answer = emulator.call("POST", TXT2IMG, json=sample_body(TXT2IMG)[1]).json()
    assert set(answer) == {"code", "msg", "data"}
    assert (answer["code"], answer["msg"], set(answer["data"])) == (0, "", {"task_id"})


@pytest.mark.parametrize(("ttl_type", "expected"), [("string", "3600"), ("integer", 3600)])
def test_image_url_ttl_comes_as_a_string_or_an_integer(
    emulator: EmulatorControl, ttl_type: str, expected: str | int
) -> None:
    emulator.configure(image_url_ttl_type=ttl_type)
    image = emulator.submit("novita", TXT2IMG, sample_body(TXT2IMG)[1])
    video = emulator.submit("novita", "/v3/async/wan-t2v", sample_body("/v3/async/wan-t2v")[1])

    assert emulator.wait("novita", image).json()["images"][0]["image_url_ttl"] == expected
    assert emulator.wait("novita", video).json()["videos"][0]["video_url_ttl"] == "3600"  # typed string


def test_the_wrapped_avatar_result(emulator: EmulatorControl) -> None:
    emulator.configure(avatar_result="wrapped")
    task_id = emulator.submit("avatar", "/avatar/generation", sample_body("/avatar/generation")[1])
    answer = emulator.wait("avatar", task_id).json()

    assert set(answer) == {"code", "data"}
    assert (answer["code"], answer["data"]["id"], answer["data"]["web_work_status"]) == (0, task_id, 200)
