"""Video end to end: real Airflow (``dag.test()``, deferral through the real trigger) against the emulator."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.emulator_fixtures import EmulatorControl
from tests.system.conftest import task_states
from tests.system.dags import video_system_dags as dags

pytestmark = pytest.mark.system

VIDEO_TASKS = {"jimeng_text": "jimeng", "jimeng_image": "jimeng", "bailian_text": "bailian"}
VIDEO_TASKS |= {"bailian_image": "bailian", "avatar": "avatar"}


@pytest.fixture
def input_image(tmp_path: Path) -> str:
    path = tmp_path / "first-frame.png"
    Image.effect_noise((128, 72), 60).convert("RGB").save(path)  # noise: too big for a short-string exemption
    return str(path)


@pytest.fixture
def failures() -> Iterator[dict[str, str]]:
    """The errors failed tasks ended with, as ``record_failure`` kept them during this test."""
    dags.FAILURES.clear()
    yield dags.FAILURES
    dags.FAILURES.clear()


def assert_one_mp4(result: dict[str, Any], api: str) -> None:
    """A succeeded result of ``api`` whose one output is a downloadable MP4 (an ISO BMFF ``ftyp`` box first)."""
    assert (result["api"], result["status"]) == (api, "succeeded")
    [output] = result["outputs"]
    assert (output["kind"], output["format"]) == ("video", "mp4")
    response = requests.get(output["url"], timeout=10)
    response.raise_for_status()
    assert response.content[4:8] == b"ftyp"


def assert_video_tasks(dag_run: Any, xcom: Callable[..., Any], emulator: EmulatorControl) -> dict[str, Any]:
    """Every video task succeeded on its first try with one MP4 and one paid submit; their results by task id."""
    states = task_states(dag_run)
    assert {task: states[task] for task in VIDEO_TASKS} == dict.fromkeys(VIDEO_TASKS, ("success", 1))
    results = {task: xcom(dag_run, task) for task in VIDEO_TASKS}
    for task, api in VIDEO_TASKS.items():
        assert_one_mp4(results[task], api)
        # str(): the server-side XCom reader decodes Jimeng's numeric string ids as numbers; tasks get strings.
        assert str(xcom(dag_run, task, key="genmedia_task_id")) == results[task]["task_id"]
    vendor_tasks = emulator.stats()["tasks"]
    assert {task: vendor_tasks[result["task_id"]]["api"] for task, result in results.items()} == VIDEO_TASKS
    return results


def test_deferred_videos_on_every_route_and_a_mapped_task(
    emulator_connections: EmulatorControl, input_image: str, xcom: Callable[..., Any]
) -> None:
    dag_run = dags.deferrable_dag.test(run_conf={"image": input_image})
    results = assert_video_tasks(dag_run, xcom, emulator_connections)
    assert "<base64:" in results["jimeng_image"]["request"]["binary_data_base64"][0]
    assert results["bailian_image"]["request"]["input"]["img_url"] == dags.IMAGE_URL
    avatar = results["avatar"]
    assert avatar["outputs"][0]["url"] == avatar["raw"]["no_wm_work_video_path"]

    mapped = [ti for ti in dag_run.get_task_instances() if ti.task_id == "jimeng_mapped"]
    assert sorted((ti.map_index, ti.state, ti.try_number) for ti in mapped) == [(i, "success", 1) for i in range(3)]
    mapped_results = [xcom(dag_run, "jimeng_mapped", map_index=index) for index in range(3)]
    for result in mapped_results:
        assert_one_mp4(result, "jimeng")
    assert [result["request"]["prompt"] for result in mapped_results] == dags.MAPPED_PROMPTS
    stats = emulator_connections.stats()
    assert (stats["submits"]["jimeng"], stats["submits"]["bailian"], stats["submits"]["avatar"]) == (5, 2, 1)


def test_videos_on_the_worker_survive_rate_limits(
    emulator_connections: EmulatorControl, input_image: str, xcom: Callable[..., Any]
) -> None:
    """Every other request answers 429: polls are retried and every submit still makes exactly one task."""
    emulator_connections.configure(rate_limit={"every": 2})
    dag_run = dags.worker_dag.test(run_conf={"image": input_image})
    results = assert_video_tasks(dag_run, xcom, emulator_connections)
    assert results["jimeng_image"]["request"]["image_urls"] == [dags.IMAGE_URL]
    assert "<base64:" in results["bailian_image"]["request"]["input"]["img_url"]
    avatar = results["avatar"]
    assert avatar["request"]["use_voice"]["text"] == dags.PARAMS["prompt"]
    assert avatar["outputs"][0]["url"] == avatar["raw"]["work_video_path"] == avatar["raw"]["wm_work_video_path"]
    stats = emulator_connections.stats()
    assert (stats["submits"]["jimeng"], stats["submits"]["bailian"], stats["submits"]["avatar"]) == (2, 2, 1)
    assert stats["faults"]["rate_limit"] >= sum(stats["polls"].values()) // 2


def test_internal_errors_while_polling_are_retried(
    emulator_connections: EmulatorControl, xcom: Callable[..., Any]
) -> None:
    """Every other request after the submit answers HTTP 500 (a 500 on the submit itself fails on purpose).

    The video takes long enough for the status check on the worker and the trigger's polls both to meet 500s.
    """
    emulator_connections.configure(server_error={"every": 2}, server_error_statuses=[500], video_seconds=1.5)
    dag_run = dags.one_task_dag.test()
    assert task_states(dag_run) == {"jimeng_text": ("success", 1)}
    assert_one_mp4(xcom(dag_run, "jimeng_text"), "jimeng")
    stats = emulator_connections.stats()
    assert stats["submits"]["jimeng"] == 1
    assert stats["faults"]["server_error"] >= 2
    assert stats["polls"]["jimeng"] >= 2


def test_vendor_failures_fail_without_retry_and_say_why(
    emulator_connections: EmulatorControl, failures: dict[str, str]
) -> None:
    dag_run = dags.failures_dag.test()
    expected = {
        "jimeng_fail": "jimeng task .* failed: 50413 emulated failure",
        "bailian_fail": "bailian task .* failed: InternalError.Algo: emulated failure",
        "avatar_fail": "avatar task .* failed: web_work_status -1",
        "jimeng_expire": "jimeng task .* expired: task expired",
        "bailian_expire": "bailian task .* expired: task unknown or expired",
    }
    assert task_states(dag_run) == dict.fromkeys(expected, ("failed", 1))
    for task, reason in expected.items():
        assert re.search(reason, failures[task]), (task, failures[task])
    stats = emulator_connections.stats()
    assert (stats["submits"]["jimeng"], stats["submits"]["bailian"], stats["submits"]["avatar"]) == (2, 2, 1)
    assert emulator_connections.api_key not in " ".join(failures.values())


def test_bad_inputs_fail_before_anything_is_sent(
    emulator_connections: EmulatorControl, failures: dict[str, str]
) -> None:
    dag_run = dags.invalid_dag.test()
    expected = {
        "jimeng_long_prompt": "prompt: String should have at most 150 characters",
        "bailian_bad_duration": "parameters.duration 7 is not one of [5, 10, 15]",
        "avatar_no_voice": "give exactly one of audio_url, create_voice, use_voice (got none)",
    }
    assert task_states(dag_run) == dict.fromkeys(expected, ("failed", 1))
    for task, reason in expected.items():
        assert "Invalid input, nothing was sent" in failures[task]
        assert reason in failures[task]
    assert emulator_connections.stats()["submit_requests"] == {"novita": 0, "jimeng": 0, "bailian": 0, "avatar": 0}
