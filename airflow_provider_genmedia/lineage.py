"""OpenLineage of the pipeline: datasets named from media links and storage URIs, and the ``genmedia`` run facet.

The pure part (names, facet fields, scrubbing) needs nothing but this package; `operator_lineage` and `run_facet`
import the OpenLineage provider when they are called, from the operators' ``get_openlineage_facets_on_*`` methods,
so that the provider runs without OpenLineage installed and a DAG file's parse pays nothing for it.

Nothing here carries a signed link's query string: every URL goes through `airflow_provider_genmedia.urls.
public_url`, and free text (a vendor's reason, a filter's) through `scrub_urls`. The API key is never in a result.
See docs/observability.md.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from os import PathLike
from typing import Any, Final, Literal, get_args
from urllib.parse import urlsplit

from airflow_provider_genmedia.results import GenerationResult, NsfwVerdict
from airflow_provider_genmedia.urls import public_url

#: The key of the provider's run facet in an OpenLineage event, and the JSON schema it follows.
FACET_KEY: Final = "genmedia"
SCHEMA_URL: Final = "https://airflow-provider-genmedia.readthedocs.io/en/latest/_static/GenMediaRunFacet.json"
#: ``[genmedia] lineage_prompt``: the prompt in the run facet as written, as its SHA-256, or not at all.
PromptMode = Literal["plain", "hash", "omit"]
PROMPT_OPTION: Final = "lineage_prompt"
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def scrub_urls(text: str) -> str:
    """``text`` with every URL in it shown without its query string, fragment and credentials."""
    return _URL_IN_TEXT.sub(lambda match: public_url(match.group(0)), text)


def dataset_name(uri: str) -> tuple[str, str]:
    """The OpenLineage ``(namespace, name)`` of a link, a storage URI or a local path, as Airflow names assets:
    ``("https://host", "/path")``, ``("s3://bucket", "key")``, ``("file", "/abs/path")``; never a query string."""
    parts = urlsplit(public_url(uri.strip()))
    scheme = parts.scheme.lower()
    if scheme in ("", "file"):
        return "file", parts.path if scheme else uri.strip()
    if scheme in ("http", "https"):
        return f"{scheme}://{parts.netloc}", parts.path or "/"
    return f"{scheme}://{parts.netloc}", parts.path.lstrip("/")


def media_reference(value: Any) -> str | None:
    """The link, URI or local path of a media input; None for bytes, base64 or anything else that names no place."""
    if isinstance(value, PathLike):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if "://" in value[:32]:
        return value if urlsplit(value).netloc or value.startswith("file:") else None
    return value if value.startswith("/") and len(value) < 4096 and "\n" not in value else None


def media_inputs(values: Mapping[str, Any], media_fields: Iterable[str]) -> list[str]:
    """The places a submit operator's media came from: its ``media_fields`` (a link, URI or path) and every other
    argument, at any depth, named like ``*_url``; in order, without duplicates."""
    found: list[str] = []
    media = set(media_fields)

    def visit(name: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                visit(str(key), item)
        elif isinstance(value, list | tuple) and name in media:
            for item in value:
                visit(name, item)
        elif name in media or name.endswith("_url"):
            reference = media_reference(value)
            if reference is not None and reference not in found:
                found.append(reference)

    for name, value in values.items():
        visit(name, value)
    return found


def prompt_fields(prompt: str | None, mode: str) -> dict[str, str]:
    """The prompt as ``[genmedia] lineage_prompt`` asks: ``{"prompt": ...}``, ``{"promptSha256": ...}`` or nothing."""
    if prompt is None or mode == "omit":
        return {}
    if mode == "hash":
        return {"promptSha256": hashlib.sha256(prompt.encode()).hexdigest()}
    return {"prompt": prompt}


def prompt_mode() -> str:
    """``[genmedia] lineage_prompt`` (default ``plain``); an unknown value hashes, the safer reading."""
    from airflow.providers.common.compat.sdk import conf

    mode = str(conf.get("genmedia", PROMPT_OPTION, fallback="plain")).strip().lower()
    return mode if mode in get_args(PromptMode) else "hash"


def _verdict(index: int, verdict: NsfwVerdict | None) -> dict[str, Any]:
    if verdict is None:
        return {"index": index, "checked": False}
    fields = verdict.model_dump(mode="json", exclude_none=True)
    return {"index": index, **fields}


def result_fields(result: GenerationResult, mode: str) -> dict[str, Any]:
    """The ``genmedia`` facet fields of a vendor task's result: api, task, status, model, seed, outputs, usage and
    cost (where known), the NSFW verdicts, the vendor's reason (scrubbed), and the prompt as ``mode`` says."""
    fields: dict[str, Any] = {
        "api": result.api,
        "vendorTaskId": result.task_id,
        "status": result.status.value,
        "model": result.model,
        "seed": result.seed,
        "outputCount": len(result.outputs),
        "reason": scrub_urls(result.reason) if result.reason else None,
        **prompt_fields(result.prompt, mode),
    }
    verdicts = [_verdict(index, output.nsfw) for index, output in result.indexed_outputs() if output.nsfw]
    if verdicts:
        fields["nsfw"] = verdicts
    if result.usage is not None:
        usage = result.usage.model_dump(mode="json", exclude_none=True)
        fields["estimatedCost"] = usage.pop("estimated_cost", None)
        fields["currency"] = usage.pop("currency", None)
        fields["usage"] = usage
    return {key: value for key, value in fields.items() if value is not None}


def filter_fields(result: GenerationResult, filtered: GenerationResult) -> dict[str, Any]:
    """What the NSFW filter kept and set aside in this run: ``kept`` vendor indexes, ``rejected`` with cause and
    reason (scrubbed), and the verdicts."""
    rejected = filtered.rejected[len(result.rejected) :]
    return {
        "kept": [index for index, _ in filtered.indexed_outputs()],
        "rejected": [
            {"index": item.index, "cause": item.cause, "reason": scrub_urls(item.reason)} for item in rejected
        ],
        "flaggedCount": sum(1 for item in rejected if item.cause == "flagged"),
    }


def review_fields(decision: Mapping[str, Any]) -> dict[str, Any]:
    """One human review decision: the vendor task, the output's index, approved or not, by whom."""
    return {
        "api": decision.get("api"),
        "vendorTaskId": decision.get("task_id"),
        "decisions": [
            {
                "index": decision.get("index"),
                "approved": bool(decision.get("approved")),
                "reviewer": decision.get("reviewer"),
            }
        ],
    }


@functools.cache
def _facet_class() -> type:
    """`GenMediaRunFacet`, made on first use: it subclasses OpenLineage's ``RunFacet``, imported only then."""
    import attr
    from airflow.providers.common.compat.openlineage.facet import RunFacet

    @attr.define
    class GenMediaRunFacet(RunFacet):
        """The ``genmedia`` run facet: what a genmedia task asked, got, kept and decided (fields: docs)."""

        api: str | None = attr.field(default=None)
        vendorTaskId: str | None = attr.field(default=None)
        status: str | None = attr.field(default=None)
        model: str | None = attr.field(default=None)
        seed: int | None = attr.field(default=None)
        outputCount: int | None = attr.field(default=None)
        prompt: str | None = attr.field(default=None)
        promptSha256: str | None = attr.field(default=None)
        usage: dict[str, Any] | None = attr.field(default=None)
        estimatedCost: float | None = attr.field(default=None)
        currency: str | None = attr.field(default=None)
        nsfw: list[dict[str, Any]] | None = attr.field(default=None)
        reason: str | None = attr.field(default=None)
        kept: list[int] | None = attr.field(default=None)
        rejected: list[dict[str, Any]] | None = attr.field(default=None)
        flaggedCount: int | None = attr.field(default=None)
        decisions: list[dict[str, Any]] | None = attr.field(default=None)
        publishedFiles: int | None = attr.field(default=None)
        publishedBytes: int | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return SCHEMA_URL

    return GenMediaRunFacet


def run_facet(fields: Mapping[str, Any]) -> Any:
    """The ``genmedia`` run facet holding ``fields`` (the names of `result_fields`, `filter_fields`, ...)."""
    return _facet_class()(**fields)


def operator_lineage(
    *,
    inputs: Iterable[str] = (),
    outputs: Iterable[tuple[str, int | None]] = (),
    fields: Mapping[str, Any] | None = None,
    vendor_task: tuple[str, str] | None = None,
) -> Any:
    """An ``OperatorLineage``: ``inputs`` and ``outputs`` (each output with its size in bytes, or None) as datasets
    named by `dataset_name`, outputs with ``OutputStatisticsOutputDatasetFacet``; run facets ``genmedia`` from
    ``fields`` and ``externalQuery`` from ``vendor_task`` (api, vendor task id)."""
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        ExternalQueryRunFacet,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    def dataset(uri: str, facets: dict[str, Any] | None = None) -> Any:
        namespace, name = dataset_name(uri)
        return Dataset(namespace=namespace, name=name, facets=facets or {})

    run_facets: dict[str, Any] = {}
    if fields:
        run_facets[FACET_KEY] = run_facet(fields)
    if vendor_task is not None:
        api, task_id = vendor_task
        run_facets["externalQuery"] = ExternalQueryRunFacet(externalQueryId=task_id, source=api)
    return OperatorLineage(
        inputs=[dataset(uri) for uri in {dataset_name(uri): uri for uri in inputs}.values()],
        outputs=[
            dataset(uri, {"outputStatistics": OutputStatisticsOutputDatasetFacet(size=size, fileCount=1)})
            for uri, size in outputs
        ],
        run_facets=run_facets,
    )


def _result(value: Any) -> GenerationResult | None:
    """A `GenerationResult` from its json; None when there is none or it does not read as one."""
    if isinstance(value, GenerationResult):
        return value
    try:
        return GenerationResult.model_validate(value) if isinstance(value, Mapping) else None
    except ValueError:
        return None


def submit_lineage(
    api: str,
    inputs: list[str],
    result_json: Mapping[str, Any] | None,
    vendor_task_id: str | None = None,
    event: Mapping[str, Any] | None = None,
) -> Any:
    """A submit operator's lineage: its media ``inputs``; once it has a result, the vendor's output links (without
    their signatures) as outputs and the result's facets; after a failed vendor task (``event``), its reason."""
    mode = prompt_mode()
    result = _result(result_json) or _result((event or {}).get("result"))
    fields: dict[str, Any] = {"api": api}
    outputs: list[tuple[str, int | None]] = []
    if result is not None:
        fields = result_fields(result, mode)
        outputs = [(output.url, None) for output in result.outputs]
        vendor_task_id = result.task_id
    if event and event.get("status") not in (None, "succeeded"):
        vendor_task_id = vendor_task_id or event.get("task_id")
        fields["status"] = event.get("status")
        fields["reason"] = scrub_urls(str(fields.get("reason") or event.get("message") or ""))
    if vendor_task_id:
        fields.setdefault("vendorTaskId", vendor_task_id)
    return operator_lineage(
        inputs=inputs,
        outputs=outputs,
        fields=fields,
        vendor_task=(api, vendor_task_id) if vendor_task_id else None,
    )


def filter_lineage(result_json: Any, filtered_json: Any) -> Any:
    """The NSFW filter's lineage: the vendor task, and what this run kept and set aside (no datasets: it moves no
    file)."""
    result, filtered = _result(result_json), _result(filtered_json)
    if result is None or filtered is None:
        return operator_lineage()
    fields = {**result_fields(filtered, prompt_mode()), **filter_fields(result, filtered)}
    return operator_lineage(fields=fields, vendor_task=(filtered.api, filtered.task_id))


def review_lineage(decision: Mapping[str, Any] | None) -> Any:
    """A human review's lineage: the decision on one output of a vendor task."""
    if not decision:
        return operator_lineage()
    api, task_id = decision.get("api"), decision.get("task_id")
    vendor_task = (str(api), str(task_id)) if api and task_id else None
    return operator_lineage(fields=review_fields(decision), vendor_task=vendor_task)


def publish_lineage(result_json: Any, published: Mapping[str, Any] | None) -> Any:
    """The publisher's lineage: the vendor links it read as inputs, every published file (with its size) and the
    manifest as outputs in the namespace of their storage, and the vendor task's facets."""
    result = _result(result_json)
    if result is None:
        return operator_lineage()
    files = list((published or {}).get("files") or [])
    outputs: list[tuple[str, int | None]] = [(file["uri"], file.get("bytes")) for file in files]
    if (published or {}).get("manifest"):
        outputs.append((str(published["manifest"]), None))  # type: ignore[index]
    fields = {
        **result_fields(result, prompt_mode()),
        "publishedFiles": len(files),
        "publishedBytes": sum(int(file.get("bytes") or 0) for file in files),
    }
    return operator_lineage(
        inputs=[output.url for output in result.outputs],
        outputs=outputs,
        fields=fields,
        vendor_task=(result.api, result.task_id),
    )
