"""`PublishMediaOperator`: publish a generation task's outputs to object storage in an Airflow task, with a manifest,
console links and an Asset event. The engine behind it (streaming, checksums, atomic commits, idempotent re-runs)
is `airflow_provider_genmedia.publish.MediaPublisher`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from airflow.sdk import Asset, BaseOperator, Context, ObjectStoragePath

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.apis.base import validate_model
from airflow_provider_genmedia.downloads import CHUNK_SIZE, DEFAULT_MAX_BYTES
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.links import (
    PUBLISHED_LINKS_KEY,
    S3_SCHEMES,
    PublishedFilesLink,
    PublishedManifestLink,
    published_links,
)
from airflow_provider_genmedia.metrics import count_published
from airflow_provider_genmedia.outcomes import airflow_outcomes
from airflow_provider_genmedia.publish import (
    DEFAULT_FILE_NAME,
    DEFAULT_MANIFEST_NAME,
    FILE_NAME_FIELDS,
    MediaPublisher,
)
from airflow_provider_genmedia.results import GenerationResult
from airflow_provider_genmedia.review import apply_reviews
from airflow_provider_genmedia.trust import DESTINATION_ROOTS, TemplatedFieldsRecorder


class PublishMediaOperator(TemplatedFieldsRecorder, BaseOperator):
    """Publish the outputs of a generation task to object storage, with a manifest and an Asset event.

    Each output is streamed (bounded memory, ``max_bytes`` limit, http(s) links only), hashed with SHA-256
    and committed atomically under ``destination``; a re-run leaves unchanged files alone. A link that
    expired is refreshed once by re-reading the vendor task. A result with no output left (all filtered out)
    publishes nothing and succeeds. Returns ``{"destination", "manifest", "files": [{"uri", "sha256",
    "bytes", "kind", "format", ...}]}``.

    :param result: The `GenerationResult` json, usually the XCom of a generation or filter task (templated).
    :param reviews: The answers of a `MediaReviewOperator` mapped over the outputs the filter set aside (templated):
        the outputs approved there are published with the safe ones, the others stay out. Given, the task's
        trigger rule defaults to ``none_failed_min_one_success``, so that it runs when nothing needed a review.
    :param destination: The folder to publish into, an ``ObjectStoragePath`` URI such as
        ``file:///data/media`` or ``s3://bucket/media`` (templated: a value rendered from a template must fall under
        ``[genmedia] destination_roots``).
    :param conn_id: The object-storage connection (e.g. an ``aws`` connection for ``s3://``).
    :param vendor_conn_id: The vendor connection used to refresh expired links, whose origin the downloads may reach
        even at a non-public address (see ``[genmedia] allowed_private_origins``); default: the API's default.
    :param file_name: Name of each file under ``destination``: Jinja first, then ``str.format`` with
        ``{api}``, ``{task_id}``, ``{index}`` (the vendor's output index), ``{ext}`` and ``{kind}``.
    :param manifest_name: Name of the manifest JSON, with the same fields (no ``{index}``/``{ext}``/``{kind}``).
    :param max_bytes: The largest output accepted, in bytes.
    :param chunk_size: Bytes read and written per step: the memory a download holds.
    :param outlets: Default: ``[Asset(destination)]`` when ``destination`` is not a template; the asset
        event's ``extra`` lists the published files.
    """

    template_fields: Sequence[str] = (
        "result",
        "reviews",
        "destination",
        "conn_id",
        "vendor_conn_id",
        "file_name",
        "manifest_name",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"result": "json", "reviews": "json"}
    ui_color = "#e8f5e9"
    operator_extra_links = (PublishedFilesLink(), PublishedManifestLink())

    def __init__(
        self,
        *,
        result: Any,
        destination: str,
        reviews: Any = None,
        conn_id: str | None = None,
        vendor_conn_id: str | None = None,
        file_name: str = DEFAULT_FILE_NAME,
        manifest_name: str = DEFAULT_MANIFEST_NAME,
        max_bytes: int = DEFAULT_MAX_BYTES,
        chunk_size: int = CHUNK_SIZE,
        **kwargs: Any,
    ) -> None:
        if "{{" not in destination:
            _check_destination(destination)
        if max_bytes < 1:
            raise GenMediaValidationError("max_bytes", f"must be a positive number of bytes, not {max_bytes}")
        if chunk_size < 1:
            raise GenMediaValidationError("chunk_size", f"must be a positive number of bytes, not {chunk_size}")
        for field, template in (("file_name", file_name), ("manifest_name", manifest_name)):
            _check_name_template(field, template)
        if "outlets" not in kwargs and "{{" not in destination:
            kwargs["outlets"] = [Asset(uri=destination)]
        if reviews is not None:
            kwargs.setdefault("trigger_rule", "none_failed_min_one_success")
        super().__init__(**kwargs)
        self.result = result
        self.reviews = reviews
        self.destination = destination
        self.conn_id = conn_id
        self.vendor_conn_id = vendor_conn_id
        self.file_name = file_name
        self.manifest_name = manifest_name
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        #: The result this run published and what it wrote: what its lineage tells.
        self._lineage_results: tuple[GenerationResult, dict[str, Any]] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        """Publish every output and the manifest, and describe the files in the outlet Asset events."""
        from airflow_provider_genmedia.hooks.genmedia import fetch_policy_for  # aiohttp: at execute time, not at parse

        with airflow_outcomes():
            _check_destination(self.destination)
            self.check_locations(("destination",), DESTINATION_ROOTS)
            result = self._reviewed_result()
            fetch_policy = fetch_policy_for(get_api(result.api), self.vendor_conn_id)
        publisher = MediaPublisher(
            ObjectStoragePath(self.destination, conn_id=self.conn_id),
            file_name=self.file_name,
            manifest_name=self.manifest_name,
            max_bytes=self.max_bytes,
            chunk_size=self.chunk_size,
            refresh=self._read_task_again,
            fetch_policy=fetch_policy,
        )
        with airflow_outcomes("Nothing more was published"):
            published = publisher.publish(result)
        console = self._console()
        links = published_links(published, **console) if console is not None else {"files": None, "manifest": None}
        if (ti := context.get("ti")) is not None:
            ti.xcom_push(key=PUBLISHED_LINKS_KEY, value=links)
        files = published["files"]
        count_published(result.api, files)
        self._lineage_results = (result, published)
        written = sum(1 for file in files if file["written"])
        self.log.info(
            "Published %d file(s) to %s: %d written, %d unchanged",
            len(files),
            published["destination"],
            written,
            len(files) - written,
        )
        extra = {
            "manifest": published["manifest"],
            "files": [{key: file[key] for key in ("uri", "sha256", "bytes", "kind", "format")} for file in files],
        }
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = extra
        return published

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the vendor links read (without their signatures) as inputs; every published file and the
        manifest as outputs in their storage's namespace, with their sizes; the vendor task's facets."""
        from airflow_provider_genmedia.lineage import publish_lineage

        return publish_lineage(*(self._lineage_results or (None, None)))

    def _read_task_again(self, result: GenerationResult) -> GenerationResult:
        """The vendor task of ``result`` as the vendor reads it now, on ``vendor_conn_id``: fresh output links."""
        from airflow_provider_genmedia.hooks.genmedia import client_for  # aiohttp: at execute time, not at parse

        return client_for(get_api(result.api), self.vendor_conn_id).get_result(result.task_id)

    def _reviewed_result(self) -> GenerationResult:
        """The result to publish, validated, with the outputs approved in review added back given ``reviews``."""
        result = validate_model(GenerationResult, self.result, prefix="result")
        if self.reviews is None:
            return result
        reviews = [review for review in self.reviews if review]
        reviewed = apply_reviews(result, reviews)
        approved = len(reviewed.approved)
        self.log.info("Reviews: %d output(s) approved, %d rejected", approved, len(reviews) - approved)
        return reviewed

    def _console(self) -> dict[str, str | None] | None:
        """The region and custom endpoint of an ``s3://`` destination's connection, for the console links; None when
        they cannot be known."""
        if urlsplit(self.destination).scheme not in S3_SCHEMES:
            return {"region": None, "endpoint_url": None}
        try:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            config = S3Hook(aws_conn_id=self.conn_id).conn_config
            return {"region": config.region_name, "endpoint_url": config.get_service_endpoint_url(service_name="s3")}
        except Exception as error:  # a link is a convenience: never fail a publish over it
            self.log.warning("No console links for %s: %s", self.destination, error)
            return None


def _check_destination(destination: str) -> None:
    """Refuse a destination without a scheme: ``file:///data/media``, not ``/data/media``."""
    if "://" not in destination:
        raise GenMediaValidationError("destination", f"{destination!r} needs a scheme, e.g. file:// or s3://")


def _check_name_template(field: str, template: str) -> None:
    """Refuse a name template with an unknown ``{field}`` now, rather than after the downloads."""
    sample = dict.fromkeys(FILE_NAME_FIELDS, "x")
    try:
        template.format(**sample)
    except (KeyError, IndexError, ValueError) as error:
        raise GenMediaValidationError(
            field, f"{template!r} is not a valid name: use the fields {', '.join(FILE_NAME_FIELDS)} ({error})"
        ) from None
