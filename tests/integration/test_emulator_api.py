"""The emulator over plain HTTP (requests): bodies, lifecycle, media, auth, validation, signed URLs, stats."""

from __future__ import annotations

import io
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import pytest
import requests
from PIL import Image

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.results import GenerationResult, TaskStatus
from tests.emulator_fixtures import SAMPLE_SUBMITS, EmulatorControl, png_base64

SUBMIT_IDS = [path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1] for _, path, _ in SAMPLE_SUBMITS]
SAMPLE = {path: (api, body) for api, path, body in SAMPLE_SUBMITS}


def run_sample(emulator: EmulatorControl, path: str) -> tuple[str, str, GenerationResult]:
    """Submit the sample body of ``path`` and wait for its result."""
    api, body = SAMPLE[path]
    task_id = emulator.submit(api, path, body)
    return api, task_id, emulator.result(api, task_id)


def novita_body(prompt: str = "a cute dog", *, extra: dict[str, Any] | None = None, **request: Any) -> dict[str, Any]:
    """A txt2img body with ``request`` fields and ``extra`` changed."""
    _, sample = SAMPLE["/v3/async/txt2img"]
    return {
        "extra": {**sample["extra"], **(extra or {})},
        "request": {**sample["request"], "prompt": prompt, **request},
    }


@pytest.mark.parametrize(("api", "path", "body"), SAMPLE_SUBMITS, ids=SUBMIT_IDS)
def test_every_route_round_trips_to_downloadable_media(
    emulator: EmulatorControl, api: str, path: str, body: dict[str, Any]
) -> None:
    task_id = emulator.submit(api, path, body)
    result = emulator.result(api, task_id)

    assert result.status is TaskStatus.SUCCEEDED
    assert result.outputs
    request = body.get("request", {})
    for output in result.outputs:
        download = requests.get(output.url, timeout=10)
        assert download.status_code == 200
        if output.kind == "image":
            image = Image.open(io.BytesIO(download.content))
            assert image.size == (request["width"], request["height"])
            assert image.format == {"png": "PNG", "jpeg": "JPEG"}[output.format or ""]
            assert download.headers["Content-Type"] == f"image/{output.format}"
        else:
            assert download.content[4:8] == b"ftyp"
            assert download.headers["Content-Type"] == "video/mp4"
    assert len(result.outputs) == request.get("image_num", 1)
    stats = emulator.stats()
    assert stats["submits"][api] == 1
    assert stats["tasks"][task_id]["downloads"] == len(result.outputs)
    assert stats["tasks"][task_id]["status"] == "succeeded"


def test_mp4_decodes_as_h264_with_ffmpeg(emulator: EmulatorControl, tmp_path: Any) -> None:
    _, _, result = run_sample(emulator, "/task/jimeng/text2video")
    video = tmp_path / "video.mp4"
    video.write_bytes(requests.get(result.outputs[0].url, timeout=10).content)
    assert video.read_bytes()[4:8] == b"ftyp"
    with av.open(str(video)) as container:  # FFmpeg's own demuxer and decoder, as a player would use them
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert stream.codec_context.name == "h264"
    assert frames and frames[0].width > 0


@pytest.mark.parametrize("image_type", ["png", "jpeg", "webp"])
def test_images_come_in_the_asked_format_and_size(emulator: EmulatorControl, image_type: str) -> None:
    body = novita_body(extra={"response_image_type": image_type}, width=320, height=128, image_num=3)
    task_id = emulator.submit("novita", "/v3/async/txt2img", body)
    result = emulator.result("novita", task_id)

    assert [output.format for output in result.outputs] == [image_type] * 3
    for output in result.outputs:
        image = Image.open(io.BytesIO(requests.get(output.url, timeout=10).content))
        assert (image.format, image.size) == ({"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[image_type], (320, 128))


def test_img2img_output_is_made_from_the_input_image(emulator: EmulatorControl) -> None:
    _, body = SAMPLE["/v3/async/img2img"]
    body = {**body, "request": {**body["request"], "image_base64": png_base64(color=(0, 0, 255)), "image_num": 1}}
    task_id = emulator.submit("novita", "/v3/async/img2img", body)
    result = emulator.result("novita", task_id)

    image = Image.open(io.BytesIO(requests.get(result.outputs[0].url, timeout=10).content)).convert("RGB")
    red, green, blue = image.getpixel((10, 10))  # type: ignore[misc]
    assert blue > red and blue > green


def test_gif_when_the_video_type_asks_for_it(emulator: EmulatorControl) -> None:
    body = {
        "extra": {"response_video_type": "gif"},
        "model_name": "darkSushiMixMix_225D_64380.safetensors",
        "width": 320,
        "height": 256,
        "steps": 20,
        "prompts": [{"frames": 32, "prompt": "a sailing boat"}],
    }
    task_id = emulator.submit("novita", "/v3/async/txt2video", body)
    result = emulator.result("novita", task_id)

    assert [(output.kind, output.format) for output in result.outputs] == [("video", "gif")]
    clip = Image.open(io.BytesIO(requests.get(result.outputs[0].url, timeout=10).content))
    assert (clip.format, clip.size) == ("GIF", (320, 256))
    assert getattr(clip, "n_frames", 1) > 1


def test_submit_answers_have_each_vendors_shape(emulator: EmulatorControl) -> None:
    answers = {path: emulator.call("POST", path, json=body).json() for _, path, body in SAMPLE_SUBMITS}

    assert set(answers["/v3/async/img2img"]) == {"task_id"}  # the documented schema; legacy is a variant
    assert set(answers["/v3/async/txt2img"]) == {"task_id"}
    jimeng = answers["/task/jimeng/text2video"]
    assert (jimeng["code"], jimeng["status"], jimeng["message"]) == (10000, 10000, "Success")
    assert jimeng["data"]["task_id"].isdigit() and len(jimeng["data"]["task_id"]) == 20
    assert {"request_id", "time_elapsed"} <= set(jimeng)
    assert answers["/task/bailian/text2video"]["output"]["task_status"] == "PENDING"
    assert answers["/avatar/generation"]["code"] == 0 and answers["/avatar/generation"]["data"]["id"]


def test_novita_result_keeps_the_seed_example_quirks(emulator: EmulatorControl) -> None:
    task_id = emulator.submit("novita", "/v3/async/img2img", SAMPLE["/v3/async/img2img"][1])
    body = emulator.wait("novita", task_id).json()

    assert body["extra"]["seed"] == "42"
    assert body["extra"]["enable_nsfw_detection"] is False
    assert body["task"] | {"task_id": None} == {
        "task_id": None,
        "task_type": "IMG_TO_IMG",
        "status": "TASK_STATUS_SUCCEED",
        "reason": "",
        "eta": 0,
        "progress_percent": 0,
    }
    image = body["images"][0]
    assert (image["image_url_ttl"], image["image_type"], image["nsfw_detection_result"]) == ("3600", "png", None)
    assert (body["videos"], body["audios"]) == ([], [])


def test_seed_minus_one_is_picked_reported_and_reproducible(emulator: EmulatorControl) -> None:
    first = emulator.submit("novita", "/v3/async/txt2img", novita_body(seed=-1, image_num=1))
    picked = emulator.result("novita", first)
    assert picked.seed is not None and picked.seed >= 0
    second = emulator.submit("novita", "/v3/async/txt2img", novita_body(seed=picked.seed, image_num=1))
    again = emulator.result("novita", second)
    third = emulator.submit("novita", "/v3/async/txt2img", novita_body(seed=picked.seed + 1, image_num=1))
    other = emulator.result("novita", third)

    def content(result: GenerationResult) -> bytes:
        return requests.get(result.outputs[0].url, timeout=10).content

    assert content(picked) == content(again)
    assert content(picked) != content(other)


@pytest.mark.parametrize(
    ("path", "states"),
    [
        ("/v3/async/txt2img", ["TASK_STATUS_QUEUED", "TASK_STATUS_PROCESSING", "TASK_STATUS_SUCCEED"]),
        ("/task/jimeng/text2video", ["in_queue", "generating", "done"]),
        ("/task/bailian/text2video", ["PENDING", "RUNNING", "SUCCEEDED"]),
        ("/avatar/generation", [0, 0, 200]),
    ],
)
def test_tasks_go_queued_running_done(emulator: EmulatorControl, path: str, states: list[Any]) -> None:
    emulator.configure(image_seconds=0.6, video_seconds=0.6)
    api, body = SAMPLE[path]
    started = time.monotonic()
    task_id = emulator.submit(api, path, body)

    def state() -> tuple[Any, dict[str, Any]]:
        raw = emulator.poll(api, task_id).json()
        value = {
            "novita": lambda: raw["task"]["status"],
            "jimeng": lambda: raw["data"]["status"],
            "bailian": lambda: raw["output"]["task_status"],
            "avatar": lambda: raw["web_work_status"],
        }[api]()
        return value, raw

    queued, queued_raw = state()
    # The emulator's clock set ahead to 0.3 s and 0.65 s past the submit (and what has passed since): no waiting.
    emulator.configure(clock_offset=max(0.0, started + 0.3 - time.monotonic()))
    running, running_raw = state()
    emulator.configure(clock_offset=max(0.0, started + 0.65 - time.monotonic()))
    done, _ = state()

    assert [queued, running, done] == states
    if api == "novita":
        assert queued_raw["task"]["progress_percent"] == 0
        assert 0 < running_raw["task"]["progress_percent"] < 100
        assert running_raw["task"]["eta"] == 1


def test_novita_progress_advances(emulator: EmulatorControl) -> None:
    emulator.configure(image_seconds=1.0)
    task_id = emulator.submit("novita", "/v3/async/txt2img", novita_body())
    seen = []
    for step in range(8):  # a poll every 0.1 s of the emulator's clock, set ahead instead of waited for
        emulator.configure(clock_offset=step * 0.1)
        seen.append(emulator.poll("novita", task_id).json()["task"]["progress_percent"])
    running = [value for value in seen if 0 < value < 100]
    assert len(running) >= 3
    assert running == sorted(running) and running[0] < running[-1]


def test_durations_drawn_per_task_vary_within_the_range_and_repeat_with_the_seed(emulator: EmulatorControl) -> None:
    def durations() -> list[float]:
        emulator.configure(image_seconds=10.0, image_seconds_max=40.0, random_seed=3)
        ids = [emulator.submit("novita", "/v3/async/txt2img", novita_body()) for _ in range(5)]
        tasks = emulator.stats()["tasks"]
        return [round(tasks[i]["finished_at"] - tasks[i]["submitted_at"], 6) for i in ids]

    first, again = durations(), durations()

    assert all(10.0 <= seconds <= 40.0 for seconds in first)
    assert len(set(first)) == 5
    assert again == first
    with pytest.raises(requests.HTTPError):
        emulator.configure(video_seconds=60.0, video_seconds_max=30.0)


@pytest.mark.parametrize("key", [None, "wrong-key"])
@pytest.mark.parametrize(
    ("method", "path", "envelope"),
    [
        ("POST", "/v3/async/txt2img", "novita"),
        ("GET", "/v3/async/task-result?task_id=x", "novita"),
        ("POST", "/task/jimeng/text2video", "gptge"),
        ("POST", "/task/bailian/text2video", "gptge"),
        ("GET", "/task/x", "gptge"),
        ("POST", "/avatar/generation", "gptge"),
        ("GET", "/avatar/task/x", "gptge"),
    ],
)
def test_a_wrong_or_missing_key_is_401(
    emulator: EmulatorControl, key: str | None, method: str, path: str, envelope: str
) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = SAMPLE.get(path, ("", None))[1]
    response = requests.request(method, f"{emulator.url}{path}", json=body, headers=headers, timeout=10)

    assert response.status_code == 401
    if envelope == "novita":
        assert response.json() | {"message": ""} == {
            "code": 401,
            "reason": "INVALID_API_KEY",
            "message": "",
            "metadata": {},
        }
    else:
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert emulator.stats()["submits"] == {"novita": 0, "jimeng": 0, "bailian": 0, "avatar": 0}


@pytest.mark.parametrize(
    ("path", "body", "field", "vendor_code"),
    [
        ("/v3/async/txt2img", novita_body(width=4096), "request.width", "INVALID_REQUEST_BODY"),
        ("/v3/async/img2img", {"request": {"prompt": "x"}}, "request.model_name", "INVALID_REQUEST_BODY"),
        ("/v3/async/wan-t2v", {"extra": {"response_image_type": "gif"}}, "extra.response_image_type", None),
        ("/v3/async/txt2img", novita_body(image_num=9), "request.image_num", "INVALID_REQUEST_BODY"),
        ("/task/jimeng/text2video", {"prompt": "x" * 151}, "prompt", 50215),
        (
            "/task/bailian/text2video",
            {"model": "wan2.6-t2v", "input": {}, "parameters": {"size": "1280*720"}},
            "input.prompt",
            "InvalidParameter",
        ),
        (
            "/avatar/generation",
            {"avatar_url": "face.png", "audio_url": "https://x.io/a.mp3"},
            "avatar_url",
            400,
        ),
    ],
)
def test_an_invalid_body_is_400_naming_the_field(
    emulator: EmulatorControl, path: str, body: dict[str, Any], field: str, vendor_code: str | int | None
) -> None:
    response = emulator.call("POST", path, json=body)

    assert response.status_code == 400
    api = "novita" if path.startswith("/v3") else path.split("/")[2] if path.startswith("/task") else "avatar"
    code, message = get_api(api).parse_error(response.json())
    assert field in str(message)
    assert code == (vendor_code or "INVALID_REQUEST_BODY")
    assert emulator.stats()["submits"][api] == 0
    assert emulator.stats()["submit_requests"][api] == 1


def test_a_body_that_is_not_json_is_400(emulator: EmulatorControl) -> None:
    response = emulator.call("POST", "/task/bailian/text2video", data=b"{not json")
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameter"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v3/async/task-result?task_id=nope", {"code": 404, "reason": "TASK_NOT_FOUND"}),
        ("/task/nope", {"error": "task_not_found"}),
        ("/avatar/task/nope", {"error": "task_not_found"}),
    ],
)
def test_an_unknown_task_is_404(emulator: EmulatorControl, path: str, expected: dict[str, Any]) -> None:
    response = emulator.call("GET", path)
    assert response.status_code == 404
    body = response.json()
    if "error" in expected:
        assert body["error"]["code"] == expected["error"]
    else:
        assert {key: body[key] for key in expected} == expected


def test_a_task_is_only_found_on_its_own_poll_route(emulator: EmulatorControl) -> None:
    avatar_id = emulator.submit("avatar", "/avatar/generation", SAMPLE["/avatar/generation"][1])
    assert emulator.call("GET", f"/task/{avatar_id}").status_code == 404
    assert emulator.call("GET", f"/v3/async/task-result?task_id={avatar_id}").status_code == 404


def test_links_are_signed_once_and_expire_for_good(emulator: EmulatorControl) -> None:
    emulator.configure(url_ttl=1)
    _, task_id, result = run_sample(emulator, "/task/jimeng/text2video")
    first = result.outputs[0].url
    assert requests.get(first, timeout=10).status_code == 200
    expires = int(parse_qs(urlsplit(first).query)["Expires"][0])
    emulator.configure(clock_offset=max(0.0, expires - time.time()) + 0.05)  # the clock past the expiry, not waited

    expired = requests.get(first, timeout=10)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text
    assert expired.headers["Content-Type"].startswith("application/xml")
    emulator.configure(url_ttl=3600)  # a later setting does not re-sign a finished task's links
    again = get_api("jimeng").parse_result(task_id, emulator.poll("jimeng", task_id).json()).outputs[0].url
    assert again == first


def test_per_poll_signing_gives_fresh_links(emulator: EmulatorControl) -> None:
    emulator.configure(url_ttl=1, url_signing="per_poll")
    _, task_id, result = run_sample(emulator, "/task/jimeng/text2video")
    first = result.outputs[0].url
    # The emulator's clock set past the link's expiry instead of waiting for it.
    emulator.configure(clock_offset=max(0.0, int(parse_qs(urlsplit(first).query)["Expires"][0]) - time.time()) + 0.05)

    fresh = get_api("jimeng").parse_result(task_id, emulator.poll("jimeng", task_id).json()).outputs[0].url
    assert fresh != first
    assert requests.get(first, timeout=10).status_code == 403
    assert requests.get(fresh, timeout=10).status_code == 200


@pytest.mark.parametrize(("path", "ttl"), [("/v3/async/txt2img", 3600), ("/task/bailian/text2video", 86400)])
def test_links_live_as_long_as_the_vendors_do(emulator: EmulatorControl, path: str, ttl: int) -> None:
    _, _, result = run_sample(emulator, path)
    expires = int(parse_qs(urlsplit(result.outputs[0].url).query)["Expires"][0])
    assert time.time() + ttl - 5 < expires <= time.time() + ttl + 1
    assert result.outputs[0].expires_at is not None


def test_forged_links_are_refused(emulator: EmulatorControl) -> None:
    _, _, result = run_sample(emulator, "/v3/async/txt2img")
    url = result.outputs[0].url
    other_file = url.replace("/0.jpeg?", "/1.jpeg?")
    for forged in (url[:-4] + "0000", other_file, url.split("?")[0], url.replace("Expires=", "Expires=9")):
        response = requests.get(forged, timeout=10)
        assert response.status_code == 403, forged
        assert "<Code>SignatureDoesNotMatch</Code>" in response.text


@pytest.mark.parametrize(("prompt", "confidence"), [("a nsfw scene", 97.5), ("a NSFW scene", 97.5), ("a cat", 1.2)])
def test_nsfw_detection_scores_by_the_marker(emulator: EmulatorControl, prompt: str, confidence: float) -> None:
    body = novita_body(prompt, extra={"enable_nsfw_detection": True, "nsfw_detection_level": 2})
    task_id = emulator.submit("novita", "/v3/async/txt2img", body)
    result = emulator.result("novita", task_id)

    assert [output.nsfw.confidence if output.nsfw else None for output in result.outputs] == [confidence] * 2
    assert all(output.nsfw and output.nsfw.checked for output in result.outputs)


def test_the_nsfw_marker_is_configurable(emulator: EmulatorControl) -> None:
    emulator.configure(nsfw_marker="spicy")
    extra = {"enable_nsfw_detection": True}
    flagged = emulator.submit("novita", "/v3/async/txt2img", novita_body("spicy food", extra=extra, image_num=1))
    plain = emulator.submit("novita", "/v3/async/txt2img", novita_body("nsfw", extra=extra, image_num=1))
    confidences = [emulator.result("novita", task).outputs[0].nsfw for task in (flagged, plain)]
    assert [verdict.confidence if verdict else None for verdict in confidences] == [97.5, 1.2]


def test_stats_count_exactly(emulator: EmulatorControl) -> None:
    novita_task = emulator.submit("novita", "/v3/async/txt2img", novita_body())
    jimeng_task = emulator.submit("jimeng", "/task/jimeng/text2video", SAMPLE["/task/jimeng/text2video"][1])
    bailian_task = emulator.submit("bailian", "/task/bailian/text2video", SAMPLE["/task/bailian/text2video"][1])
    for _ in range(3):
        emulator.poll("novita", novita_task)
    emulator.poll("jimeng", jimeng_task)
    emulator.call("GET", "/task/unknown")

    stats = emulator.stats()
    assert stats["submits"] == {"novita": 1, "jimeng": 1, "bailian": 1, "avatar": 0}
    assert stats["submit_requests"] == {"novita": 1, "jimeng": 1, "bailian": 1, "avatar": 0}
    assert stats["polls"] == {"novita": 3, "jimeng": 1, "bailian": 0, "avatar": 0}
    assert {task: (row["api"], row["polls"], row["downloads"]) for task, row in stats["tasks"].items()} == {
        novita_task: ("novita", 3, 0),
        jimeng_task: ("jimeng", 1, 0),
        bailian_task: ("bailian", 0, 0),
    }
    assert set(stats["faults"].values()) == {0}


def test_reset_forgets_tasks_and_restores_the_settings(emulator: EmulatorControl) -> None:
    task_id = emulator.submit("novita", "/v3/async/txt2img", novita_body())
    emulator.configure(latency=5, fail_marker="boom")
    emulator.reset()

    assert emulator.stats()["tasks"] == {}
    assert emulator.poll("novita", task_id).status_code == 404
    config = requests.get(f"{emulator.url}/_emulator/config", timeout=10).json()
    assert (config["latency"], config["fail_marker"]) == (0.0, "fail")
    assert "api_key" not in config


@pytest.mark.parametrize(
    "settings", [{"no_such_setting": 1}, {"rate_limit": {"rate": 2}}, {"server_error_statuses": [404]}, [1, 2]]
)
def test_bad_settings_are_refused(emulator: EmulatorControl, settings: Any) -> None:
    response = requests.post(f"{emulator.url}/_emulator/config", json=settings, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]
