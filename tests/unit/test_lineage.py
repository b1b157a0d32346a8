"""OpenLineage of the operators: dataset names from links and storage URIs, the genmedia run facet built from a
result, and no signed link's query string anywhere (the events themselves are proven on a real deployment,
tests/deployment/test_observability.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openlineage.client.serde import Serde

from airflow_provider_genmedia import lineage
from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator
from airflow_provider_genmedia.operators.video import AvatarVideoOperator
from airflow_provider_genmedia.results import GenerationResult

SIGNED = "https://cdn.example/out/0.png?X-Amz-Signature=s3cr3t&X-Amz-Expires=600"
RESULT: dict[str, Any] = {
    "api": "novita",
    "task_id": "task-1",
    "status": "succeeded",
    "seed": 42,
    "prompt": "a teapot",
    "model": "sd_xl_base_1.0.safetensors",
    "outputs": [
        {"url": SIGNED, "kind": "image", "format": "png", "nsfw": {"checked": True, "confidence": 3.5}},
        {"url": "https://cdn.example/out/1.png?sig=abc", "kind": "image", "format": "png"},
    ],
    "usage": {"outputs": 2, "reported": {"credits": 4}, "estimated_cost": 0.02, "currency": "USD"},
}


def as_json(value: Any) -> str:
    """An OperatorLineage as the OpenLineage client would send it."""
    return json.dumps(
        {
            "inputs": [Serde.to_dict(item) for item in value.inputs],
            "outputs": [Serde.to_dict(item) for item in value.outputs],
            "run": {key: Serde.to_dict(facet) for key, facet in value.run_facets.items()},
        }
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (SIGNED, ("https://cdn.example", "/out/0.png")),
        ("https://user:pw@cdn.example:8443/a.mp4#frag", ("https://cdn.example:8443", "/a.mp4")),
        ("file:///data/media/a.png", ("file", "/data/media/a.png")),
        ("/data/in/product.png", ("file", "/data/in/product.png")),
        ("s3://bucket/media/a.png", ("s3://bucket", "media/a.png")),
        ("gs://bucket/a/b.mp4?generation=3", ("gs://bucket", "a/b.mp4")),
    ],
)
def test_datasets_are_named_as_airflow_names_assets_without_a_query(uri: str, expected: tuple[str, str]) -> None:
    assert lineage.dataset_name(uri) == expected


def test_urls_in_free_text_lose_their_query_string() -> None:
    text = f"could not fetch {SIGNED} (expired), retried http://h/x?token=t"
    assert lineage.scrub_urls(text) == "could not fetch https://cdn.example/out/0.png (expired), retried http://h/x"


def test_media_inputs_are_links_uris_and_paths_never_bytes_nor_other_urls() -> None:
    values = {
        "image": "/data/in/product.png",
        "prompt": "https://not-an-input.example/in/a/prompt",
        "audio_url": SIGNED,
        "create_voice": {"audio_url": "s3://voices/sample.wav", "text": "hello"},
        "webhook": {"url": "https://hooks.example/done"},
        "avatar_url": "aGVsbG8=" * 100,
    }
    assert lineage.media_inputs(values, ("image",)) == ["/data/in/product.png", SIGNED, "s3://voices/sample.wav"]
    assert lineage.media_inputs({"image": b"\x89PNG"}, ("image",)) == []


def test_the_prompt_goes_in_plain_hashed_or_not_at_all() -> None:
    assert lineage.prompt_fields("a teapot", "plain") == {"prompt": "a teapot"}
    hashed = lineage.prompt_fields("a teapot", "hash")
    assert set(hashed) == {"promptSha256"} and len(hashed["promptSha256"]) == 64
    assert lineage.prompt_fields("a teapot", "omit") == {} == lineage.prompt_fields(None, "plain")


def test_the_lineage_prompt_setting_is_read_and_an_unknown_value_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lineage.prompt_mode() == "plain"
    monkeypatch.setenv("AIRFLOW__GENMEDIA__LINEAGE_PROMPT", "omit")
    assert lineage.prompt_mode() == "omit"
    monkeypatch.setenv("AIRFLOW__GENMEDIA__LINEAGE_PROMPT", "verbatim")
    assert lineage.prompt_mode() == "hash"


def test_the_run_facet_of_a_result_holds_model_seed_outputs_usage_cost_and_verdicts() -> None:
    fields = lineage.result_fields(GenerationResult.model_validate(RESULT), "plain")
    assert fields == {
        "api": "novita",
        "vendorTaskId": "task-1",
        "status": "succeeded",
        "model": "sd_xl_base_1.0.safetensors",
        "seed": 42,
        "outputCount": 2,
        "prompt": "a teapot",
        "nsfw": [{"index": 0, "checked": True, "confidence": 3.5, "source": "vendor"}],
        "estimatedCost": 0.02,
        "currency": "USD",
        "usage": {"outputs": 2, "reported": {"credits": 4}},
    }


def test_a_submit_tells_its_inputs_the_vendor_links_and_task_without_signatures() -> None:
    value = lineage.submit_lineage("novita", ["/data/in/product.png", SIGNED], RESULT)
    text = as_json(value)
    assert "?" not in text and "s3cr3t" not in text and "sig=" not in text
    document = json.loads(text)
    assert [(item["namespace"], item["name"]) for item in document["inputs"]] == [
        ("file", "/data/in/product.png"),
        ("https://cdn.example", "/out/0.png"),
    ]
    assert [item["name"] for item in document["outputs"]] == ["/out/0.png", "/out/1.png"]
    assert document["run"]["externalQuery"]["externalQueryId"] == "task-1"
    assert document["run"]["externalQuery"]["source"] == "novita"
    assert document["run"]["genmedia"]["_schemaURL"] == lineage.SCHEMA_URL


def test_a_failed_vendor_task_tells_its_reason_without_a_signed_link() -> None:
    event = {
        "status": "failed",
        "api": "jimeng",
        "task_id": "task-9",
        "message": f"jimeng task task-9 failed: could not read {SIGNED}",
        "result": None,
    }
    document = json.loads(as_json(lineage.submit_lineage("jimeng", [], None, "task-9", event=event)))
    genmedia = document["run"]["genmedia"]
    assert (genmedia["status"], genmedia["vendorTaskId"]) == ("failed", "task-9")
    assert genmedia["reason"] == "jimeng task task-9 failed: could not read https://cdn.example/out/0.png"
    assert document["run"]["externalQuery"]["externalQueryId"] == "task-9"


def test_the_publisher_tells_every_file_and_the_manifest_in_their_storage_with_sizes() -> None:
    published = {
        "destination": "s3://media/shots",
        "manifest": "s3://media/shots/novita_task-1.manifest.json",
        "files": [
            {"uri": "s3://media/shots/novita_task-1_0.png", "bytes": 1200, "written": True},
            {"uri": "s3://media/shots/novita_task-1_1.png", "bytes": 800, "written": False},
        ],
    }
    document = json.loads(as_json(lineage.publish_lineage(RESULT, published)))
    assert [(item["namespace"], item["name"]) for item in document["outputs"]] == [
        ("s3://media", "shots/novita_task-1_0.png"),
        ("s3://media", "shots/novita_task-1_1.png"),
        ("s3://media", "shots/novita_task-1.manifest.json"),
    ]
    sizes = [item["facets"]["outputStatistics"].get("size") for item in document["outputs"]]
    assert sizes == [1200, 800, None]
    assert [item["name"] for item in document["inputs"]] == ["/out/0.png", "/out/1.png"]
    assert (document["run"]["genmedia"]["publishedFiles"], document["run"]["genmedia"]["publishedBytes"]) == (2, 2000)
    assert "?" not in json.dumps(document)


def test_the_filter_tells_what_it_kept_and_set_aside() -> None:
    from airflow_provider_genmedia.nsfw import filter_nsfw

    result = GenerationResult.model_validate(RESULT)
    filtered = filter_nsfw(result, 50.0, "reject", None)
    document = json.loads(as_json(lineage.filter_lineage(result, filtered.model_dump(mode="json"))))
    genmedia = document["run"]["genmedia"]
    assert (genmedia["kept"], genmedia["flaggedCount"]) == ([0], 0)
    assert [(item["index"], item["cause"]) for item in genmedia["rejected"]] == [(1, "unchecked")]
    assert "?" not in json.dumps(genmedia)


def test_a_review_tells_its_decision() -> None:
    decision = {"api": "avatar", "task_id": "t-3", "index": 0, "approved": True, "reviewer": "ana", "output": {}}
    document = json.loads(as_json(lineage.review_lineage(decision)))
    assert document["run"]["genmedia"]["decisions"] == [{"index": 0, "approved": True, "reviewer": "ana"}]
    assert document["run"]["externalQuery"]["externalQueryId"] == "t-3"


def test_the_operators_answer_the_openlineage_methods() -> None:
    restyle = NovitaImg2ImgOperator(
        task_id="restyle", image="/data/in/product.png", prompt="a teapot", model_name="m.safetensors"
    )
    start = restyle.get_openlineage_facets_on_start()
    assert [(item.namespace, item.name) for item in start.inputs] == [("file", "/data/in/product.png")]
    avatar = AvatarVideoOperator(task_id="talk", avatar_url=SIGNED, audio_url="https://cdn.example/a.mp3?sig=1")
    avatar.generation_result = {**RESULT, "api": "avatar"}
    complete = avatar.get_openlineage_facets_on_complete(None)
    assert {item.name for item in complete.inputs} == {"/out/0.png", "/a.mp3"}
    assert complete.run_facets["externalQuery"].externalQueryId == "task-1"
    assert "?" not in as_json(complete)
