"""What the UI shows of the provider, through the REST API the UI itself calls, on a real deployment.

One run of ``genmedia_human_review`` whose two images the emulator scores NSFW proves the human review (a reviewer
approves one and rejects one; only the approved one is published, to S3) and the extra links of every kind: the
first output while its signed link is valid, the published folder and manifest in the S3 console. The connection
tests are the ones the Admin > Connections page asks the api-server for. S3 is moto's server in its own process (its
state apart from the moto of other tests), reached through ``AWS_ENDPOINT_URL_S3`` so that the ``aws_default``
connection looks like AWS's own (a connection with its own ``endpoint_url`` gets no console link, since the AWS
console cannot show that store).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from genmedia_stack import BIN, Deployment, EmulatorProcess, free_port, stop_process_group, wait_until
from tests.deployment.airflow_version import requires_airflow
from tests.deployment.conftest import dag_sources, destination_roots

pytestmark = requires_airflow("3.3", "The UI tests (human review parked as awaiting_input, connection test answers)")
DAG_ID = "genmedia_human_review"
BUCKET, PREFIX, REGION = "genmedia-reviewed", "reviewed", "eu-west-1"
S3_CONSOLE = "https://s3.console.aws.amazon.com/s3"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local S3 (moto's server, in its own process) with the destination bucket."""
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(endpoint), 30, "the local S3")
        s3_client(endpoint).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield endpoint
    finally:
        stop_process_group(server)


def answers(url: str) -> bool:
    """True once ``url`` answers HTTP."""
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client on the local S3."""
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, emulator_process: EmulatorProcess, s3_endpoint: str
) -> Iterator[Deployment]:
    """The module's deployment, with S3 credentials, connection tests enabled (off by default) and the UI's
    connections stored in the metadata database."""
    extra_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        **destination_roots(tmp_path_factory, f"s3://{BUCKET}/{PREFIX}"),
    }
    stack = Deployment(
        root=tmp_path_factory.mktemp("deployment"),
        dag_sources=dag_sources(),
        emulator=emulator_process,
        extra_env=extra_env,
    )
    try:
        yield stack.start()
    finally:
        stack.stop()


@dataclass(frozen=True)
class Review:
    """The reviewed run: its id, the review request as the UI read it, and the two answers as the API gave them."""

    run_id: str
    request: dict[str, Any]
    answers: dict[int, dict[str, Any]]


def scheduler_saw_parked(deployment: Deployment, run_id: str) -> bool:
    """True once the scheduler logged the end of the worker process of both review requests, parked as
    ``awaiting_input``."""
    log = (deployment.logs / "scheduler.log").read_text(errors="replace")
    finished = [line for line in log.splitlines() if "TaskInstance Finished" in line and f"run_id={run_id}," in line]
    return all(
        any(
            f"task_id=review, run_id={run_id}, map_index={index}," in line and "state=awaiting_input" in line
            for line in finished
        )
        for index in (0, 1)
    )


def failure_report(deployment: Deployment, run_id: str) -> str:
    """The run's task states and the end of each failed task's logs, to tell why a run failed."""
    states = deployment.states(DAG_ID, run_id)
    failed = {task for (task, _), (state, _) in states.items() if state not in ("success", "skipped")}
    folder = deployment.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    logs = [path for task in sorted(failed) for path in sorted(folder.glob(f"task_id={task}/**/*.log*"))]
    return f"{states}\n" + "\n".join(f"--- {path}\n{tail(path)}" for path in logs)


def tail(path: Path, chars: int = 4000) -> str:
    """The end of a text file."""
    return path.read_text(errors="replace")[-chars:]


def hitl_path(run_id: str, map_index: int) -> str:
    """The REST path of one review request."""
    return f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review/{map_index}/hitlDetails"


def links(deployment: Deployment, run_id: str, task_id: str) -> dict[str, Any]:
    """``GET .../taskInstances/{task_id}/links``: what the UI shows as the task's extra links."""
    return dict(deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/links"))


@pytest.fixture(scope="module")
def review(deployment: Deployment) -> Review:
    """Run the review DAG on two flagged images; approve the first, reject the second, through the REST API."""
    deployment.wait_for_dags(DAG_ID)
    deployment.unpause(DAG_ID)
    conf = {"prompt": "a ceramic mug under nsfw neon light", "destination": f"s3://{BUCKET}/{PREFIX}"}
    run_id = deployment.trigger(DAG_ID, conf)

    def both_waiting() -> bool:
        states = deployment.states(DAG_ID, run_id)
        return all(states.get(("review", index), ("",))[0] == "awaiting_input" for index in (0, 1))

    wait_until(both_waiting, 120, "both review requests to wait for an answer", interval=1.0)
    # A person answers seconds later; an answer before the scheduler has taken in the exit of the process that
    # parked the task makes Airflow 3.3.2 fail the task ("state changed externally"), so wait for that first.
    wait_until(lambda: scheduler_saw_parked(deployment, run_id), 60, "the scheduler to see both requests parked")
    request = deployment.api("GET", hitl_path(run_id, 0))
    answers = {
        index: deployment.api("PATCH", hitl_path(run_id, index), json={"chosen_options": [choice]})
        for index, choice in ((0, "Approve"), (1, "Reject"))
    }
    state = deployment.wait_for_run(DAG_ID, run_id, timeout=120)
    assert state == "success", failure_report(deployment, run_id)
    print(json.dumps({"review_request": request, "answers": answers}, indent=2, sort_keys=True))
    return Review(run_id, request, answers)


def test_a_reviewer_approves_one_output_and_rejects_one(
    deployment: Deployment, review: Review, s3_endpoint: str
) -> None:
    states = deployment.states(DAG_ID, review.run_id)
    assert {task: state for task, (state, _) in states.items()} == {
        ("restyle", -1): "success",
        ("nsfw_filter", -1): "success",
        ("set_aside", -1): "success",
        ("review", 0): "success",
        ("review", 1): "success",
        ("publish", -1): "success",
    }
    assert [answer["chosen_options"] for answer in review.answers.values()] == [["Approve"], ["Reject"]]
    s3 = s3_client(s3_endpoint)
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"])
    (manifest_key,) = [key for key in keys if key.endswith(".manifest.json")]
    images = [key for key in keys if key.endswith(".png")]
    assert len(keys) == 2 and len(images) == 1 and images[0].endswith("_0.png")  # only the approved output
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    assert [(entry["index"], entry["nsfw"]["confidence"]) for entry in manifest["files"]] == [(0, 97.5)]
    assert [entry["index"] for entry in manifest["approved_by_review"]] == [0]
    (rejected,) = manifest["rejected"]
    assert rejected["index"] == 1 and "above the threshold 50; rejected by" in rejected["reason"]
    print(json.dumps({"s3_keys": keys, "manifest": manifest}, indent=2, sort_keys=True))


def test_the_review_request_shows_the_image_to_judge(review: Review) -> None:
    request = review.request
    assert (request["options"], request["defaults"], request["multiple"]) == (["Approve", "Reject"], ["Reject"], False)
    assert request["subject"].startswith("Publish output 0 of novita task ")
    image_url = request["body"].split("](", 1)[1].split(")", 1)[0]
    assert request["body"].startswith("![output 0](") and "NSFW score (0-100):** 97.5" in request["body"]
    shown = requests.get(image_url, timeout=10)
    assert shown.status_code == 200 and shown.headers["Content-Type"] == "image/png"


def test_extra_links_lead_to_the_output_and_the_published_files(deployment: Deployment, review: Review) -> None:
    answers = {task: links(deployment, review.run_id, task) for task in ("restyle", "nsfw_filter", "publish")}
    print(json.dumps({"links": answers}, indent=2, sort_keys=True))
    first_output = answers["restyle"]["extra_links"]["First output"]
    result = deployment.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{review.run_id}/taskInstances/restyle/xcomEntries/return_value"
    )
    assert first_output == result["value"]["outputs"][0]["url"]
    fetched = requests.get(first_output, timeout=10)
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "image/png"
    assert answers["nsfw_filter"] == {"extra_links": {}, "total_entries": 0}
    manifest_key = f"{PREFIX}/novita_{result['value']['task_id']}.manifest.json"
    assert answers["publish"]["extra_links"] == {
        "Manifest": f"{S3_CONSOLE}/object/{BUCKET}?prefix={manifest_key}",
        "Published files": f"{S3_CONSOLE}/buckets/{BUCKET}?prefix={PREFIX}/",
    }


def test_connection_tests_name_the_service_and_the_ui_test_button_fault(
    deployment: Deployment, emulator_process: EmulatorProcess
) -> None:
    stored = {"connection_id": "gptge_ui", "conn_type": "gptge", "host": emulator_process.url}
    deployment.api("POST", "/connections", json={**stored, "password": emulator_process.api_key})
    listed = deployment.api("GET", "/connections/gptge_ui")
    # What Airflow 3.3.2's Test button posts for a stored connection: its fields as listed (the key masked),
    # and port Number(null), that is 0.
    ui_body = {**listed, "extra": listed["extra"] or "{}", "port": 0, "description": "", "login": "", "schema": ""}
    ui_body.pop("team_name")
    button = deployment.session.post(f"{deployment.url}/api/v2/connections/test", json=ui_body, timeout=30)
    assert button.status_code == 400 and "host or port to test differs" in button.json()["detail"]

    def test(body: dict[str, Any]) -> dict[str, Any]:
        return dict(deployment.api("POST", "/connections/test", json=body))

    unreachable = f"http://127.0.0.1:{free_port()}"
    answers = {
        "stored": test({"connection_id": "gptge_ui", "conn_type": "gptge"}),
        "wrong_key": test({**stored, "connection_id": "gptge_try", "password": "not-the-key"}),
        "unreachable": test({**stored, "connection_id": "gptge_try", "host": unreachable, "password": "some-key"}),
    }
    print(json.dumps({"test_button": button.json(), "rest": answers}, indent=2, sort_keys=True))
    assert answers["stored"] == {
        "status": True,
        "message": f"Connected to gpt.ge at {emulator_process.url}; the API key was accepted.",
    }
    assert answers["wrong_key"]["status"] is False
    assert answers["wrong_key"]["message"].startswith(f"gpt.ge at {emulator_process.url} refused the API key: HTTP 401")
    assert answers["unreachable"] == {
        "status": False,
        "message": f"gpt.ge: cannot reach {unreachable}: connection refused",
    }
    assert emulator_process.api_key not in json.dumps(answers)


def test_the_api_key_is_in_no_link_request_or_rendered_field(
    deployment: Deployment, review: Review, emulator_process: EmulatorProcess
) -> None:
    task_instances = deployment.task_instances(DAG_ID, review.run_id)
    assert all(ti["rendered_fields"] for ti in task_instances if ti["task_id"] in ("restyle", "review", "publish"))
    seen = [
        review.request,
        task_instances,
        *[links(deployment, review.run_id, task) for task in ("restyle", "publish")],
    ]
    assert emulator_process.api_key not in json.dumps(seen)
    dump = deployment.metadata_dump()
    assert DAG_ID.encode() in dump and b"COPY public.connection" in dump
    assert emulator_process.api_key.encode() not in dump
