"""Publish generated media to object storage: streamed, checksummed, atomic and idempotent, with a manifest.

Every output is streamed in fixed-size chunks (memory stays one chunk whatever the file size), hashed with
SHA-256 on the way, and only then committed under its final name: on a local file system by renaming a
hidden ``.part`` file written beside it, on an object store (``s3://``, ...) by one upload from a local
staging file followed by a size check, since an object appears there only once its upload completes. A
reader never sees a half-written file, and a cut download leaves nothing behind.

A re-run is idempotent: a file whose previous manifest entry still matches what is stored (by SHA-256) is
not downloaded again, and a freshly downloaded file identical to the one already there is not rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import posixpath
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar
from urllib.parse import urlsplit

import requests
from airflow.sdk import Asset, BaseOperator, Context, ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from airflow_provider_genmedia import __version__
from airflow_provider_genmedia.downloads import (
    CHUNK_SIZE,
    DEFAULT_MAX_BYTES,
    Download,
    LinkExpiredError,
    MediaDownloadError,
    MediaTooLargeError,
    check_http_url,
    download_to,
    public_url,
)
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.hooks.genmedia import GenMediaHook, hook_for_api
from airflow_provider_genmedia.links import (
    PUBLISHED_LINKS_KEY,
    S3_SCHEMES,
    PublishedFilesLink,
    PublishedManifestLink,
    published_links,
)
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, TaskStatus

log = logging.getLogger(__name__)

#: File name of each output under the destination; ``str.format`` fields below, Jinja runs first.
DEFAULT_FILE_NAME = "{api}_{task_id}_{index}.{ext}"
DEFAULT_MANIFEST_NAME = "{api}_{task_id}.manifest.json"
FILE_NAME_FIELDS = ("api", "task_id", "index", "ext", "kind")
#: The key under which a filtered result lists the vendor's index of each kept output (see `operators.nsfw`).
SOURCE_INDEXES_KEY = "source_indexes"
_EXTENSIONS = {"jpeg": "jpg"}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _extension(output: MediaOutput) -> str:
    fmt = output.format or posixpath.splitext(urlsplit(output.url).path)[1].lstrip(".") or "bin"
    return _EXTENSIONS.get(fmt.lower(), fmt.lower())


def request_field(request: Mapping[str, Any] | None, *names: str) -> Any:
    """The first of ``names`` in a submitted body, looked up flat and in Novita's ``request`` or Bailian's ``input``."""
    if not request:
        return None
    for scope in (request, request.get("request"), request.get("input")):
        if isinstance(scope, Mapping):
            for name in names:
                if scope.get(name) not in (None, ""):
                    return scope[name]
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class MediaPublisher:
    """Publish the outputs of one `GenerationResult` under ``destination``: the engine of `PublishMediaOperator`.

    :param destination: The folder to publish into (any ``ObjectStoragePath``: ``file://``, ``s3://``, ...).
    :param vendor_conn_id: The vendor connection used to re-read the task when a link expired.
    """

    def __init__(
        self,
        destination: ObjectStoragePath,
        *,
        file_name: str = DEFAULT_FILE_NAME,
        manifest_name: str = DEFAULT_MANIFEST_NAME,
        max_bytes: int = DEFAULT_MAX_BYTES,
        chunk_size: int = CHUNK_SIZE,
        vendor_conn_id: str | None = None,
    ) -> None:
        self.destination = destination
        self.fs: AbstractFileSystem = destination.fs
        self.root = destination.path.rstrip("/")
        self.file_name = file_name
        self.manifest_name = manifest_name
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self.vendor_conn_id = vendor_conn_id
        self._session = requests.Session()
        self._refreshed: GenerationResult | None = None

    @property
    def local(self) -> bool:
        """True on a local file system, where a rename is atomic."""
        return isinstance(self.fs, LocalFileSystem)

    def uri(self, fs_path: str) -> str:
        """The URI of a path on the destination's file system (no connection id in it)."""
        return f"{self.destination.protocol}://{fs_path}"

    def publish(self, result: Mapping[str, Any] | GenerationResult) -> dict[str, Any]:
        """Publish every output and the manifest; return ``{"destination", "manifest", "files"}``."""
        data = result.model_dump(mode="json") if isinstance(result, GenerationResult) else dict(result)
        generation = GenerationResult.model_validate(data)
        indexes = list(data.get(SOURCE_INDEXES_KEY) or range(len(generation.outputs)))
        if len(indexes) != len(generation.outputs):
            raise GenMediaValidationError("result", f"{SOURCE_INDEXES_KEY} does not match the outputs")
        destination = self.uri(self.root)
        if not generation.outputs:
            rejected = len(data.get("rejected") or [])
            log.info(
                "%s task %s has no output to publish (%d rejected): nothing written",
                generation.api,
                generation.task_id,
                rejected,
            )
            return {"destination": destination, "manifest": None, "files": []}
        for position, output in enumerate(generation.outputs):
            check_http_url(output.url, f"outputs[{position}].url")
        names = [
            self._name(generation, output, index) for output, index in zip(generation.outputs, indexes, strict=True)
        ]
        if len(set(names)) != len(names):
            raise GenMediaValidationError("file_name", f"{self.file_name!r} gives several outputs the same name")
        manifest_path = self._path(self._format(self.manifest_name, generation, None, 0))
        previous = self._previous_entries(manifest_path)
        try:
            files = [
                self._publish_one(generation, output, index, name, previous.get(name))
                for output, index, name in zip(generation.outputs, indexes, names, strict=True)
            ]
        finally:
            self._session.close()
        manifest = self._manifest(generation, data, files)
        self._commit_bytes(manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
        return {"destination": destination, "manifest": self.uri(manifest_path), "files": files}

    # -- names ---------------------------------------------------------------------------------------------

    def _format(self, template: str, result: GenerationResult, output: MediaOutput | None, index: int) -> str:
        fields = {
            "api": result.api,
            "task_id": _UNSAFE_NAME_CHARS.sub("_", result.task_id),
            "index": index,
            "ext": _extension(output) if output else "",
            "kind": output.kind if output else "",
        }
        name = template.format(**fields).strip("/")
        if not name or any(part in ("", ".", "..") for part in name.split("/")):
            raise GenMediaValidationError("file_name", f"{name!r} is not a relative file name")
        return name

    def _name(self, result: GenerationResult, output: MediaOutput, index: int) -> str:
        return self._format(self.file_name, result, output, index)

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    # -- idempotence ---------------------------------------------------------------------------------------

    def _previous_entries(self, manifest_path: str) -> dict[str, dict[str, Any]]:
        """The file entries of the manifest an earlier run wrote, by name; empty when there is none."""
        try:
            with self.fs.open(manifest_path, "rb") as file:
                manifest = json.load(file)
        except (FileNotFoundError, ValueError):
            return {}
        files = manifest.get("files") if isinstance(manifest, dict) else None
        return {entry["name"]: entry for entry in files or [] if isinstance(entry, dict) and "name" in entry}

    def _stored_sha256(self, fs_path: str) -> str | None:
        """The SHA-256 of the file stored at ``fs_path`` (read in chunks), or None when there is none."""
        self.fs.invalidate_cache(fs_path)
        if not self.fs.exists(fs_path):
            return None
        digest = hashlib.sha256()
        with self.fs.open(fs_path, "rb") as file:
            for chunk in iter(lambda: file.read(self.chunk_size), b""):
                digest.update(chunk)
        return digest.hexdigest()

    # -- one output ----------------------------------------------------------------------------------------

    def _publish_one(
        self,
        result: GenerationResult,
        output: MediaOutput,
        index: int,
        name: str,
        previous: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        final = self._path(name)
        entry = {
            "name": name,
            "uri": self.uri(final),
            "index": index,
            "kind": output.kind,
            "format": output.format or _extension(output),
            "nsfw": output.nsfw.model_dump(mode="json") if output.nsfw else None,
            "source_url": public_url(output.url),
        }
        previous = previous if previous and previous.get("index") == index else None
        if previous and self._stored_sha256(final) == previous.get("sha256"):
            kept = {key: previous.get(key) for key in ("sha256", "bytes", "published_at")}
            log.info("%s is already published with sha256 %s: left as it is", entry["uri"], kept["sha256"])
            return {**entry, **kept, "written": False}
        with self._staging(final) as (staging_path, file):
            download = self._download(result, output, index, file)
            file.close()
            written = self._stored_sha256(final) != download.sha256
            if written:
                self._commit_file(staging_path, final, download.size)
                log.info("Published %s (%d bytes, sha256 %s)", entry["uri"], download.size, download.sha256)
            else:
                log.info("%s already holds the same bytes (sha256 %s): left as it is", entry["uri"], download.sha256)
        unchanged = not written and previous is not None and previous.get("sha256") == download.sha256
        published_at = previous["published_at"] if unchanged and previous else _now()
        return {
            **entry,
            "sha256": download.sha256,
            "bytes": download.size,
            "published_at": published_at,
            "written": written,
        }

    @contextlib.contextmanager
    def _staging(self, final: str) -> Iterator[tuple[str, IO[bytes]]]:
        """A writable staging file, removed afterwards whatever happens: beside ``final`` on a local file system
        (so that the commit is an atomic rename), in a local temporary folder for an object store."""
        if self.local:
            folder, base = posixpath.split(final)
            self.fs.makedirs(folder, exist_ok=True)
            path = posixpath.join(folder, f".{base}.{uuid.uuid4().hex}.part")
            try:
                with open(path, "wb") as file:
                    yield path, file
            finally:
                Path(path).unlink(missing_ok=True)
            return
        with tempfile.TemporaryDirectory(prefix="genmedia-publish-") as folder:
            path = str(Path(folder) / "media.part")
            with open(path, "wb") as file:
                yield path, file

    def _download(self, result: GenerationResult, output: MediaOutput, index: int, file: IO[bytes]) -> Download:
        """Download ``output``; a link that expired (by its ``expires_at`` or a 403) is refreshed once."""
        refreshed = False
        url = output.url
        if output.expires_at is not None and output.expires_at <= datetime.now(UTC):
            url, refreshed = self._fresh_url(result, index), True
        try:
            return download_to(url, file, max_bytes=self.max_bytes, chunk_size=self.chunk_size, session=self._session)
        except LinkExpiredError:
            if refreshed:
                raise
        file.seek(0)
        file.truncate()
        return download_to(
            self._fresh_url(result, index),
            file,
            max_bytes=self.max_bytes,
            chunk_size=self.chunk_size,
            session=self._session,
        )

    def _fresh_url(self, result: GenerationResult, index: int) -> str:
        """The output's link as the vendor signs it now: the task is re-read once per publish, through the hook."""
        if self._refreshed is None:
            log.warning(
                "The link of %s task %s output %d expired: re-reading the task", result.api, result.task_id, index
            )
            hook: GenMediaHook = hook_for_api(result.api, self.vendor_conn_id)
            self._refreshed = hook.get_result(result.api, result.task_id)
        fresh = self._refreshed
        if fresh.status is not TaskStatus.SUCCEEDED or index >= len(fresh.outputs):
            raise LinkExpiredError(
                f"the link of {result.api} task {result.task_id} output {index} expired, and the task now reads "
                f"{fresh.status.value} with {len(fresh.outputs)} output(s)"
            )
        url = fresh.outputs[index].url
        check_http_url(url, f"outputs[{index}].url")
        return url

    # -- commit --------------------------------------------------------------------------------------------

    def _commit_file(self, staging_path: str, final: str, size: int) -> None:
        """Make the staged file appear under ``final`` at once: a rename, or one upload checked by its size."""
        if self.local:
            self.fs.mv(staging_path, final)
            return
        self.fs.put_file(staging_path, final)
        self.fs.invalidate_cache(final)
        stored = self.fs.info(final).get("size")
        if stored != size:
            raise MediaDownloadError(f"{self.uri(final)} holds {stored} bytes after the upload, not {size}")

    def _commit_bytes(self, final: str, content: bytes) -> None:
        """Write a small file (the manifest) atomically, unless the same bytes are already there."""
        if self._stored_sha256(final) == hashlib.sha256(content).hexdigest():
            return
        with self._staging(final) as (staging_path, file):
            file.write(content)
            file.close()
            self._commit_file(staging_path, final, len(content))

    # -- manifest ------------------------------------------------------------------------------------------

    def _manifest(
        self, result: GenerationResult, data: Mapping[str, Any], files: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """What was published and from what: stable across re-runs that change nothing."""
        return {
            "api": result.api,
            "task_id": result.task_id,
            "prompt": request_field(result.request, "prompt"),
            "model": request_field(result.request, "model_name", "model"),
            "seed": result.seed,
            "files": [{key: value for key, value in file.items() if key != "written"} for file in files],
            "rejected": [
                {
                    "index": item.get("index"),
                    "reason": item.get("reason"),
                    "source_url": public_url(str(item.get("output", {}).get("url", ""))),
                }
                for item in data.get("rejected") or []
                if isinstance(item, Mapping)
            ],
            **({"approved_by_review": data["approved"]} if data.get("approved") else {}),
            "generator": f"airflow-provider-genmedia {__version__}",
        }


class PublishMediaOperator(BaseOperator):
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
        ``file:///data/media`` or ``s3://bucket/media`` (templated).
    :param conn_id: The object-storage connection (e.g. an ``aws`` connection for ``s3://``).
    :param vendor_conn_id: The vendor connection used to refresh expired links; default: the API's default.
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

    def execute(self, context: Context) -> dict[str, Any]:
        """Publish every output and the manifest, and describe the files in the outlet Asset events."""
        try:
            _check_destination(self.destination)
        except GenMediaValidationError as error:
            raise AirflowFailException(str(error)) from error
        publisher = MediaPublisher(
            ObjectStoragePath(self.destination, conn_id=self.conn_id),
            file_name=self.file_name,
            manifest_name=self.manifest_name,
            max_bytes=self.max_bytes,
            chunk_size=self.chunk_size,
            vendor_conn_id=self.vendor_conn_id,
        )
        try:
            published = publisher.publish(self._reviewed_result())
        except (GenMediaValidationError, MediaTooLargeError) as error:
            raise AirflowFailException(f"Nothing more was published: {error}") from error
        console = self._console()
        links = published_links(published, **console) if console is not None else {"files": None, "manifest": None}
        if (ti := context.get("ti")) is not None:
            ti.xcom_push(key=PUBLISHED_LINKS_KEY, value=links)
        files = published["files"]
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

    def _reviewed_result(self) -> Any:
        """The result to publish: with the outputs approved in review added back when ``reviews`` is given."""
        if self.reviews is None or self.result is None:
            return self.result
        from airflow_provider_genmedia.operators.review import apply_reviews

        reviews = [review for review in self.reviews if review]
        try:
            result = apply_reviews(self.result, reviews)
        except GenMediaValidationError as error:
            raise AirflowFailException(str(error)) from error
        approved = len(result.get("approved") or [])
        self.log.info("Reviews: %d output(s) approved, %d rejected", approved, len(reviews) - approved)
        return result

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
