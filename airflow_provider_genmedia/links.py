"""Operator extra links: the first output while its signed link is valid, and the published files in a console.

Airflow 3 resolves an operator's links on the worker at the end of every try (``finalize``, deferrals included) and
stores each in XCom under ``_link_<class name>``; the API server and the UI only read those values back. A task that
its trigger ended stores its links with its other XComs (`GenMediaTaskTrigger`). So a link is decided when the
task ends: `FirstOutputLink` is given only while the output's signed URL is still valid then, and keeps that value
afterwards (the vendor refuses it once it expired: Novita and Jimeng after 1 hour, Bailian after
24 hours). The published files keep working links: `PublishedFilesLink` and `PublishedManifestLink` open them in
the object store's console (the AWS S3 console for ``s3://``). ``file://`` and other stores get no link, since a
browser cannot open a local file from a web page.

Neither Novita nor gpt.ge documents a console page for one task, nor a list of tasks, so no link leads to the
vendor's console: the vendor task id is in XCom ``genmedia_task_id`` and in the task log.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode, urlsplit

from airflow.sdk import BaseOperatorLink

from airflow_provider_genmedia.urls import is_http_url

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: XCom key of the links a publish task computed: ``{"files": url | None, "manifest": url | None}``.
PUBLISHED_LINKS_KEY = "genmedia_links"
S3_CONSOLE = "https://s3.console.aws.amazon.com/s3"
S3_SCHEMES = ("s3", "s3a", "s3n")


def first_output_url(result: Any, now: datetime | None = None) -> str:
    """The URL of the result's first output while it is valid; empty when there is none or it expired.

    :param result: A `GenerationResult` json (what a generation task returns); anything else gives no link.
    :param now: The time to judge the expiry at (default: now, UTC).
    """
    outputs = result.get("outputs") if isinstance(result, Mapping) else None
    if not outputs or not isinstance(outputs[0], Mapping):
        return ""
    url, expires_at = outputs[0].get("url"), outputs[0].get("expires_at")
    if not is_http_url(url):
        return ""
    if expires_at:
        expiry = datetime.fromisoformat(str(expires_at).replace("Z", "+00:00"))
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        if expiry <= (now or datetime.now(UTC)):
            return ""
    return url


def object_console_url(
    uri: str | None, *, folder: bool = False, region: str | None = None, endpoint_url: str | None = None
) -> str | None:
    """The page of an object (or of a folder, with ``folder=True``) in its store's web console; None when there is
    no such page: a scheme other than ``s3://``, or an S3 connection to another endpoint than AWS (MinIO, ...).

    :param uri: ``s3://bucket/key`` as `PublishMediaOperator` reports it.
    :param region: The bucket's AWS region, when the connection names one (the console finds it otherwise).
    :param endpoint_url: The S3 endpoint the connection uses instead of AWS's, if any.
    """
    if not uri or endpoint_url:
        return None
    parts = urlsplit(uri)
    if parts.scheme not in S3_SCHEMES or not parts.netloc:
        return None
    key = parts.path.lstrip("/")
    query: dict[str, str] = {"region": region} if region else {}
    if folder:
        if key:
            query["prefix"] = key.rstrip("/") + "/"
        page = "buckets"
    else:
        if not key:
            return None
        query["prefix"] = key
        page = "object"
    suffix = f"?{urlencode(query, quote_via=quote, safe='/')}" if query else ""
    return f"{S3_CONSOLE}/{page}/{quote(parts.netloc)}{suffix}"


def published_links(published: Mapping[str, Any], *, region: str | None, endpoint_url: str | None) -> dict[str, Any]:
    """``{"files": url | None, "manifest": url | None}`` for a `PublishMediaOperator` result: the destination folder
    and the manifest in the object store's console."""
    if not published.get("files"):
        return {"files": None, "manifest": None}
    return {
        "files": object_console_url(
            published.get("destination"), folder=True, region=region, endpoint_url=endpoint_url
        ),
        "manifest": object_console_url(published.get("manifest"), region=region, endpoint_url=endpoint_url),
    }


class FirstOutputLink(BaseOperatorLink):
    """The first output of a generation task, while its signed URL is valid at the end of the try.

    The worker resolves it on the operator that ran the try, from the result the operator keeps in
    ``generation_result``: a try that deferred has none yet, and reads no XCom to find that out.
    """

    name = "First output"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL of the result the try returned; empty while the task waits or once the URL expired."""
        return first_output_url(getattr(operator, "generation_result", None))


class _PublishedLink(BaseOperatorLink):
    slot: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The console page the publish task recorded in XCom ``genmedia_links``; empty when there is none."""
        from airflow.providers.common.compat.sdk import XCom

        links = XCom.get_value(ti_key=ti_key, key=PUBLISHED_LINKS_KEY)
        value = links.get(self.slot) if isinstance(links, Mapping) else None
        return value if isinstance(value, str) else ""


class PublishedFilesLink(_PublishedLink):
    """The destination folder of a publish task in the object store's console."""

    name = "Published files"
    slot = "files"


class PublishedManifestLink(_PublishedLink):
    """The manifest a publish task wrote, in the object store's console."""

    name = "Manifest"
    slot = "manifest"
