"""The vendor's own Python SDK, ``novita-client``, unpatched against the emulator.

If the emulator answers as Novita documents, the official SDK works against it as it does against
https://api.novita.ai. Where only the SDK is at fault, the test shows the fault by name and asserts the SDK's
wrong behaviour, so the emulator is never loosened to suit it.
"""

from __future__ import annotations

import base64
import gc
import io
import logging
from collections.abc import Iterator

import pytest
from dataclass_wizard.errors import MissingFields
from novita_client import NovitaClient, NovitaResponseError
from novita_client.proto import V3TaskResponse, V3TaskResponseStatus
from PIL import Image

from tests.emulator_fixtures import EmulatorControl, png_base64

MODEL = "sd_xl_base_1.0.safetensors"
#: SDK fault: ``batch_download_images`` opens a ``ThreadPool`` per call and never closes it, so Python warns when
#: the pool is collected. The fixture collects it inside the test that made it; the warning itself is the SDK's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function Pool.__del__:pytest.PytestUnraisableExceptionWarning",
    "ignore:unclosed running multiprocessing pool:ResourceWarning",
)


@pytest.fixture
def client(emulator: EmulatorControl) -> Iterator[NovitaClient]:
    """The SDK aimed at the emulator with the right key."""
    sdk = NovitaClient(emulator.api_key, base_url=emulator.url)
    yield sdk
    sdk.session.close()
    gc.collect()  # the SDK's unclosed download pools, here rather than in some later test


@pytest.fixture(autouse=True)
def _quiet_sdk(caplog: pytest.LogCaptureFixture) -> None:
    """The SDK logs every failure at ERROR; keep it out of the test report."""
    caplog.set_level(logging.CRITICAL, logger="novita_client")


def images(response: V3TaskResponse) -> list[Image.Image]:
    """The images the SDK downloaded, decoded."""
    return [Image.open(io.BytesIO(base64.b64decode(blob))) for blob in response.images_encoded]


@pytest.mark.parametrize("ttl_type", ["string", "integer"])
def test_txt2img_v3_end_to_end(emulator: EmulatorControl, client: NovitaClient, ttl_type: str) -> None:
    emulator.configure(image_url_ttl_type=ttl_type)
    response = client.txt2img_v3(MODEL, "a lighthouse at dusk", image_num=2, width=320, height=256, seed=11)

    assert response.task.status is V3TaskResponseStatus.TASK_STATUS_SUCCEED
    assert [(image.format, image.size) for image in images(response)] == [("JPEG", (320, 256))] * 2
    assert [image.image_url_ttl for image in response.images] == [3600, 3600]
    assert response.extra.seed == 11
    assert emulator.stats()["submits"]["novita"] == 1


def test_img2img_v3_end_to_end(emulator: EmulatorControl, client: NovitaClient) -> None:
    response = client.img2img_v3(
        MODEL,
        png_base64(200, 160, (0, 0, 255)),
        "the same in blue",
        image_num=1,
        steps=20,
        response_image_type="png",
        enable_nsfw_detection=True,
    )

    assert response.task.status is V3TaskResponseStatus.TASK_STATUS_SUCCEED
    (image,) = images(response)
    assert (image.format, image.size) == ("PNG", (512, 512))  # the SDK's default width and height
    red, green, blue = image.convert("RGB").getpixel((10, 10))  # type: ignore[misc]
    assert blue > red and blue > green
    verdict = response.images[0].nsfw_detection_result
    assert verdict is not None and verdict.valid and verdict.confidence < 50


def test_the_sdk_parses_queued_and_running_answers(emulator: EmulatorControl, client: NovitaClient) -> None:
    emulator.configure(image_seconds=1.2)
    seen: list[V3TaskResponse] = []
    client.txt2img_v3(MODEL, "a slow lighthouse", image_num=1, callback=seen.append, download_images=False)

    states = [answer.task.status for answer in seen]
    assert states[0] is V3TaskResponseStatus.TASK_STATUS_QUEUED
    assert seen[0].extra.seed is None and seen[0].task.eta == 0  # a queued task has extra: {} at the vendor
    assert V3TaskResponseStatus.TASK_STATUS_PROCESSING in states
    assert states[-1] is V3TaskResponseStatus.TASK_STATUS_SUCCEED


def test_a_failed_txt2img_task_raises_in_the_sdk(emulator: EmulatorControl, client: NovitaClient) -> None:
    emulator.configure(fail_reason="ILLEGAL_PROMPT")
    with pytest.raises(NovitaResponseError, match="TASK_STATUS_FAILED"):
        client.txt2img_v3(MODEL, "please fail", image_num=1)
    assert emulator.stats()["submits"]["novita"] == 1


def test_sdk_fault_img2img_v3_returns_a_failed_task_instead_of_raising(client: NovitaClient) -> None:
    """SDK fault: ``img2img_v3`` only logs a failed task, where ``txt2img_v3`` raises ``NovitaResponseError``."""
    response = client.img2img_v3(MODEL, png_base64(), "please fail", image_num=1, steps=20)

    assert response.task.status is V3TaskResponseStatus.TASK_STATUS_FAILED
    assert response.task.reason == "emulated failure: the generation was rejected"
    assert not response.images


def test_a_wrong_key_raises_in_the_sdk_and_costs_nothing(emulator: EmulatorControl) -> None:
    sdk = NovitaClient("sk_not-the-key", base_url=emulator.url)
    with pytest.raises(NovitaResponseError, match=r"status 401.*INVALID_API_KEY"):
        sdk.txt2img_v3(MODEL, "a lighthouse", image_num=1)
    with pytest.raises(NovitaResponseError, match="status 401"):
        sdk.async_task_result("any-task")
    sdk.session.close()
    assert emulator.stats()["submits"]["novita"] == 0


def test_sdk_fault_img2img_v3_sends_steps_null_unless_given(emulator: EmulatorControl, client: NovitaClient) -> None:
    """SDK fault: ``img2img_v3(steps=None)`` (its default) sends ``"steps": null``; the doc requires 1..100."""
    with pytest.raises(NovitaResponseError, match=r"status 400.*request\.steps"):
        client.img2img_v3(MODEL, png_base64(), "a dog", image_num=1)
    assert emulator.stats()["submits"]["novita"] == 0


def test_sdk_fault_the_legacy_submit_answer_is_not_read(emulator: EmulatorControl, client: NovitaClient) -> None:
    """SDK fault: ``Img2ImgV3Response`` reads only a top-level ``task_id``, not the legacy
    ``{"code": 0, "msg": "", "data": {"task_id"}}`` that every img2img example of Novita's page shows."""
    emulator.configure(novita_submit_answer="legacy")
    with pytest.raises(MissingFields, match="task_id"):
        client.img2img_v3(MODEL, png_base64(), "a dog", image_num=1, steps=20)
    assert emulator.stats()["submits"]["novita"] == 1  # the job was created and paid for all the same
