"""PublishMediaOperator against the emulator, onto ``file://`` and a local S3 server (moto in server mode)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import Asset, ObjectStoragePath
from airflow.sdk.execution_time.context import OutletEventAccessors
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.downloads import DOWNLOAD_ATTEMPTS
from airflow_provider_genmedia.exceptions import GenMediaConnectionError, GenMediaValidationError
from airflow_provider_genmedia.operators.nsfw import NsfwFilterOperator, filter_nsfw
from airflow_provider_genmedia.operators.publish import PublishMediaOperator
from tests.conftest import trust_origins
from tests.emulator_fixtures import EmulatorControl, sample_body
from tests.s3_fixtures import S3_CONN_ID, s3_client

#: A bucket of this module's own with versioning on, so that every write of an object gets a new version id: a rewrite
#: shows at once, with no second to wait for a later LastModified.
VERSIONED_BUCKET = "genmedia-published-versioned"


@dataclass(frozen=True)
class Destination:
    """Where a test publishes, and how it looks at what is there."""

    uri: str
    conn_id: str | None

    @property
    def path(self) -> ObjectStoragePath:
        return ObjectStoragePath(self.uri, conn_id=self.conn_id)

    def listing(self) -> dict[str, tuple[int, Any]]:
        """``{name: (size, stamp)}`` of every object under the destination; the stamp changes with any write: a file's
        inode and mtime (see `age`), an object's ETag and version id (its bucket keeps versions)."""
        fs, root = self.path.fs, self.path.path.rstrip("/")
        fs.invalidate_cache()
        if not fs.exists(root):
            return {}
        found = {}
        for path in fs.find(root):
            info = fs.info(path, refresh=True)  # a head request: a listing names no version
            if "mtime" in info:
                stamp: Any = (info["ino"], info["mtime"])
            else:
                stamp = (info.get("ETag"), info.get("VersionId"))
                assert stamp[1] not in (None, "null"), "the bucket must keep versions for a rewrite to show"
            found[path.removeprefix(root + "/")] = (info["size"], stamp)
        return found

    def age(self) -> None:
        """Set every local file's mtime an hour back, so that a rewrite in place shows in the mtime without waiting
        for the clock to tick (an object store's rewrite shows in its new version id)."""
        if self.path.protocol == "file":
            for file in Path(self.path.path).rglob("*"):
                stat = file.stat()
                os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns - 3600 * 10**9))

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()


@pytest.fixture(params=["file", "s3"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    if request.param == "file":
        return Destination(f"file://{tmp_path}/published", None)
    client = s3_client(request.getfixturevalue("s3_server"))
    if VERSIONED_BUCKET not in [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=VERSIONED_BUCKET)
        client.put_bucket_versioning(Bucket=VERSIONED_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return Destination(f"s3://{VERSIONED_BUCKET}/{uuid.uuid4().hex}", S3_CONN_ID)


@pytest.fixture
def generate(emulator_connections: EmulatorControl) -> Callable[..., dict[str, Any]]:
    """Run a task on the emulator and return its result json, with the submitted body, its prompt and its model as
    the operator keeps them."""

    def run(path: str, prompt: str | None = None) -> dict[str, Any]:
        api, body = sample_body(path, prompt)
        task_id = emulator_connections.submit(api, path, body)
        result = emulator_connections.result(api, task_id)
        return get_api(api).complete(result, body, path=path).model_dump(mode="json")

    return run


def publish(destination: Destination, result: dict[str, Any], **arguments: Any) -> tuple[dict[str, Any], Any]:
    """Execute the operator as Airflow would; return what it returned and the extra of its Asset event."""
    operator = PublishMediaOperator(
        task_id="publish", result=result, destination=destination.uri, conn_id=destination.conn_id, **arguments
    )
    outlet_events = OutletEventAccessors()
    published = operator.execute({"outlet_events": outlet_events})  # type: ignore[arg-type]
    return published, outlet_events[Asset(uri=destination.uri)].extra


def downloads(emulator: EmulatorControl, task_id: str) -> int:
    return int(emulator.stats()["tasks"][task_id]["downloads"])


def test_images_and_a_video_land_with_their_checksums_and_manifest(
    destination: Destination, generate: Callable[..., dict[str, Any]]
) -> None:
    images = generate("/v3/async/img2img")
    video = generate("/v3/async/wan-t2v")
    for result, expected in ((images, [("image", "png")] * 2), (video, [("video", "mp4")])):
        published, extra = publish(destination, result)
        originals = [requests.get(output["url"], timeout=10).content for output in result["outputs"]]
        files = published["files"]
        assert [(file["kind"], file["format"]) for file in files] == expected
        for index, (file, original) in enumerate(zip(files, originals, strict=True)):
            extension = {"png": "png", "mp4": "mp4"}[file["format"]]
            assert file["uri"] == f"{destination.uri}/{result['api']}_{result['task_id']}_{index}.{extension}"
            stored = destination.read(file["name"])
            assert stored == original
            assert (file["sha256"], file["bytes"]) == (hashlib.sha256(original).hexdigest(), len(original))
        manifest = json.loads(destination.read(f"{result['api']}_{result['task_id']}.manifest.json"))
        assert published["manifest"] == f"{destination.uri}/{result['api']}_{result['task_id']}.manifest.json"
        assert extra == {
            "manifest": published["manifest"],
            "files": [{key: file[key] for key in ("uri", "sha256", "bytes", "kind", "format")} for file in files],
        }
        assert (manifest["api"], manifest["task_id"], manifest["seed"]) == (
            result["api"],
            result["task_id"],
            42 if result is images else 7,
        )
        for entry, file, output in zip(manifest["files"], files, result["outputs"], strict=True):
            assert (entry["sha256"], entry["bytes"], entry["uri"]) == (file["sha256"], file["bytes"], file["uri"])
            assert entry["nsfw"] == output["nsfw"]
            assert entry["source_url"] == output["url"].split("?")[0]
            assert "Signature" not in json.dumps(manifest)
            assert entry["published_at"]
    manifest = json.loads(destination.read(f"novita_{images['task_id']}.manifest.json"))
    assert (manifest["prompt"], manifest["model"]) == ("a cute dog", "sd_xl_base_1.0.safetensors")
    assert manifest["files"][0]["nsfw"] is None  # the sample body does not ask for detection
    assert (
        manifest["usage"]
        == images["usage"]
        == {
            "outputs": 2,
            "video_seconds": None,
            "resolution": "256x192",
            "reported": None,
            "estimated_cost": None,
            "currency": None,
        }
    )
    video_manifest = json.loads(destination.read(f"novita_{video['task_id']}.manifest.json"))
    assert video_manifest["prompt"] == "a boat at dawn"


def test_a_rerun_changes_nothing_and_downloads_nothing(
    destination: Destination, generate: Callable[..., dict[str, Any]], emulator: EmulatorControl
) -> None:
    result = generate("/v3/async/img2img")
    first, _ = publish(destination, result)
    destination.age()
    before = destination.listing()
    assert len(before) == 3 and all(file["written"] for file in first["files"])
    fetched = downloads(emulator, result["task_id"])
    second, _ = publish(destination, result)
    assert destination.listing() == before
    assert downloads(emulator, result["task_id"]) == fetched
    assert [file["written"] for file in second["files"]] == [False, False]
    assert [file["sha256"] for file in second["files"]] == [file["sha256"] for file in first["files"]]


def test_an_identical_file_already_there_is_not_rewritten(
    destination: Destination, generate: Callable[..., dict[str, Any]]
) -> None:
    result = generate("/v3/async/wan-t2v")
    publish(destination, result)
    (destination.path / f"novita_{result['task_id']}.manifest.json").unlink()
    video = f"novita_{result['task_id']}_0.mp4"
    destination.age()
    before = destination.listing()[video]
    published, _ = publish(destination, result)
    assert published["files"][0]["written"] is False
    assert destination.listing()[video] == before


def test_a_download_cut_once_is_retried_and_published_whole(
    destination: Destination, generate: Callable[..., dict[str, Any]], emulator: EmulatorControl
) -> None:
    result = generate("/v3/async/wan-t2v")
    fetched = downloads(emulator, result["task_id"])
    emulator.configure(drop_download={"next": 1})
    published, _ = publish(destination, result)
    assert downloads(emulator, result["task_id"]) == fetched + 2
    original = requests.get(result["outputs"][0]["url"], timeout=10).content
    assert destination.read(published["files"][0]["name"]) == original
    assert published["files"][0]["sha256"] == hashlib.sha256(original).hexdigest()


def test_a_download_cut_on_every_try_leaves_nothing_and_the_rerun_completes(
    destination: Destination, generate: Callable[..., dict[str, Any]], emulator: EmulatorControl
) -> None:
    result = generate("/v3/async/wan-t2v")
    emulator.configure(drop_download={"next": DOWNLOAD_ATTEMPTS})
    with pytest.raises(GenMediaConnectionError, match=r"failed|cut short") as error:
        publish(destination, result)
    assert "Signature" not in str(error.value)
    assert error.value.connected  # the store was reached, then the body was cut
    assert destination.listing() == {}
    published, _ = publish(destination, result)
    assert sorted(destination.listing()) == [f"novita_{result['task_id']}.manifest.json", published["files"][0]["name"]]
    assert (
        destination.read(published["files"][0]["name"]) == requests.get(result["outputs"][0]["url"], timeout=10).content
    )


@pytest.mark.parametrize("how", ["answers 403", "expires_at passed"])
def test_an_expired_link_is_refreshed_once_through_the_hook(
    how: str, tmp_path: Path, generate: Callable[..., dict[str, Any]], emulator: EmulatorControl
) -> None:
    emulator.configure(url_ttl=1)
    result = generate("/v3/async/img2img")
    # A refresh helps only where the vendor signs links at query time, as Novita's examples suggest.
    emulator.configure(url_ttl=3600, url_signing="per_poll")
    if how == "answers 403":
        deadline = time.monotonic() + 10  # the links' 1 s lifetime runs out
        while requests.get(result["outputs"][0]["url"], timeout=10).status_code != 403:
            assert time.monotonic() < deadline, "the link never expired"
            time.sleep(0.05)
        for output in result["outputs"]:
            output["expires_at"] = None
    else:
        for output in result["outputs"]:
            output["expires_at"] = "2020-01-01T00:00:00Z"
    polls = emulator.stats()["polls"]["novita"]
    published, _ = publish(Destination(f"file://{tmp_path}/out", None), result)
    assert emulator.stats()["polls"]["novita"] == polls + 1  # one re-read of the task serves both outputs
    assert [file["written"] for file in published["files"]] == [True, True]
    assert all(
        file["source_url"] == output["url"].split("?")[0]
        for file, output in zip(published["files"], result["outputs"], strict=True)
    )


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://cdn.example/0.png", "//cdn.example/0.png"])
def test_a_non_http_link_is_refused_before_any_io(
    url: str, tmp_path: Path, generate: Callable[..., dict[str, Any]], emulator: EmulatorControl
) -> None:
    result = generate("/v3/async/img2img")
    result["outputs"][1]["url"] = url
    fetched = downloads(emulator, result["task_id"])
    with pytest.raises(AirflowFailException, match=r"outputs\[1\]\.url: only http\(s\) links are downloaded"):
        publish(Destination(f"file://{tmp_path}/out", None), result)
    assert not (tmp_path / "out").exists()
    assert downloads(emulator, result["task_id"]) == fetched


def test_an_output_over_the_size_limit_is_refused(
    destination: Destination, generate: Callable[..., dict[str, Any]]
) -> None:
    result = generate("/v3/async/wan-t2v")
    with pytest.raises(AirflowFailException, match=r"is \d+ bytes, over the limit of 1000 \(max_bytes\)"):
        publish(destination, result, max_bytes=1000)
    assert destination.listing() == {}


def test_a_result_with_every_output_filtered_out_publishes_nothing(tmp_path: Path) -> None:
    output = {"url": "https://cdn.example/0.png", "kind": "image"}
    rejected = [{"index": 0, "output": output, "reason": "vendor NSFW confidence 97", "cause": "flagged"}]
    result = {"api": "novita", "task_id": "t-1", "status": "succeeded", "outputs": [], "rejected": rejected}
    destination = Destination(f"file://{tmp_path}/out", None)
    published, extra = publish(destination, result)
    assert published == {"destination": destination.uri, "manifest": None, "files": []}
    assert extra == {"manifest": None, "files": []}
    assert not (tmp_path / "out").exists()


def test_reviewed_outputs_are_published_and_the_manifest_says_who_decided(
    tmp_path: Path, generate: Callable[..., dict[str, Any]]
) -> None:
    result = generate("/v3/async/img2img")
    filtered = filter_nsfw(result).model_dump(mode="json")  # no detection asked: both outputs set aside
    reviews = [
        {"api": "novita", "task_id": result["task_id"], "index": index, "approved": approved, "reviewer": "ada"}
        | {"responded_at": "2026-11-23T12:00:00+00:00"}
        for index, approved in ((0, False), (1, True))
    ]
    destination = Destination(f"file://{tmp_path}/out", None)
    published, _ = publish(destination, filtered, reviews=reviews)
    assert [file["name"] for file in published["files"]] == [f"novita_{result['task_id']}_1.png"]
    manifest = json.loads(destination.read(f"novita_{result['task_id']}.manifest.json"))
    assert (manifest["prompt"], manifest["model"]) == ("a cute dog", "sd_xl_base_1.0.safetensors")
    [rejected] = manifest["rejected"]
    assert (rejected["index"], rejected["source_url"]) == (0, result["outputs"][0]["url"].split("?")[0])
    assert "rejected by ada" in rejected["reason"]
    assert manifest["approved_by_review"] == [{"index": 1, "reviewer": "ada", "responded_at": "2026-11-23T12:00:00Z"}]


def test_a_result_that_does_not_validate_fails_without_retry(tmp_path: Path) -> None:
    output = {"url": "https://cdn.example/0.png", "kind": "image"}
    result = {"api": "novita", "task_id": "t-1", "status": "succeeded", "outputs": [output], "source_indexes": [0, 1]}
    with pytest.raises(AirflowFailException, match="result: source_indexes has 2 entries for 1 outputs"):
        publish(Destination(f"file://{tmp_path}/out", None), result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"destination": "/tmp/media"}, "destination: '/tmp/media' needs a scheme"),
        ({"max_bytes": 0}, "max_bytes: must be a positive number of bytes, not 0"),
        ({"file_name": "{api}_{seed}.{ext}"}, "file_name: '{api}_{seed}.{ext}' is not a valid name"),
    ],
)
def test_bad_arguments_are_refused_at_once(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(GenMediaValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PublishMediaOperator(task_id="publish", result={}, **{"destination": "file:///tmp/media", **arguments})


# -- the links a vendor answers with (airflow_provider_genmedia.safe_fetch) ----------------------------------------


def test_an_output_link_to_another_loopback_origin_is_refused_unless_listed(
    tmp_path: Path,
    generate: Callable[..., dict[str, Any]],
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    httpserver.expect_request("/stolen.png").respond_with_data(b"internal bytes")
    result = generate("/v3/async/txt2img")
    result["outputs"][0]["url"] = httpserver.url_for("/stolen.png") + "?X-Amz-Signature=secret"
    destination = Destination(f"file://{tmp_path}/out", None)
    with pytest.raises(AirflowFailException, match=r"a loopback address.*allowed_private_origins") as refused:
        publish(destination, result)
    assert "secret" not in str(refused.value)
    assert len(httpserver.log) == 0
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]

    trust_origins(monkeypatch, httpserver.url_for("/").rstrip("/"))
    published, _ = publish(destination, result)
    assert len(httpserver.log) == 1
    assert destination.read(published["files"][0]["name"]) == b"internal bytes"


def test_a_redirect_from_the_connections_own_origin_to_another_is_refused(
    tmp_path: Path, generate: Callable[..., dict[str, Any]], emulator: EmulatorControl, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(re.compile(".*")).respond_with_data(b"internal bytes")
    result = generate("/v3/async/txt2img")
    emulator.configure(redirect_downloads=httpserver.url_for("/").rstrip("/"))
    with pytest.raises(AirflowFailException, match=r"a loopback address.*allowed_private_origins"):
        publish(Destination(f"file://{tmp_path}/out", None), result)
    assert downloads(emulator, result["task_id"]) == 1  # the first hop, on the connection's own origin
    assert len(httpserver.log) == 0


@pytest.mark.usefixtures("trusted_httpserver")
def test_no_vendor_data_names_a_file_outside_the_destination(tmp_path: Path, httpserver: HTTPServer) -> None:
    """Output links whose paths climb (plain and percent-encoded), a format and a task id that climb: every file lands
    in the destination folder, named by the template's fields made safe."""
    httpserver.expect_request(re.compile(".*")).respond_with_data(b"media")
    base = httpserver.url_for("/").rstrip("/")
    outputs = [
        {"url": f"{base}/../../etc/x.png", "kind": "image"},
        {"url": f"{base}/a/%2e%2e%2f%2e%2e%2fescape.png", "kind": "image"},
        {"url": f"{base}/b.png%2f..%2f..%2fx", "kind": "image"},
        {"url": f"{base}/c.png", "kind": "image", "format": "png/../../../x"},
    ]
    result = {"api": "novita", "task_id": "../../../escape", "status": "succeeded", "outputs": outputs}
    destination = Destination(f"file://{tmp_path}/deep/out", None)
    published, _ = publish(destination, result)
    files = sorted(path for path in tmp_path.rglob("*") if path.is_file())
    assert files and all(path.parent == tmp_path / "deep" / "out" for path in files)
    assert len(files) == len(outputs) + 1  # and the manifest
    assert all(".." not in file["name"].replace(".._", "") and "/" not in file["name"] for file in published["files"])


def test_the_nsfw_scorer_downloads_from_the_connections_own_origin_unlisted(
    generate: Callable[..., dict[str, Any]], emulator: EmulatorControl
) -> None:
    """The emulator on 127.0.0.1 is the default connection's own origin: its links are fetched with no setting."""
    result = generate("/task/jimeng/text2video")
    scored: list[int] = []

    def scorer(output: Any, path: Path) -> float:
        scored.append(path.stat().st_size)
        return 1.0

    operator = NsfwFilterOperator(task_id="nsfw", result=result, scorer=scorer)
    assert len(operator.execute({})["outputs"]) == len(result["outputs"]) == len(scored)
    assert downloads(emulator, result["task_id"]) == len(scored) and min(scored) > 0
