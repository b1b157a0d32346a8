"""The publishing engine: the outputs of a `GenerationResult` streamed to object storage, checksummed, atomic and
idempotent, with a manifest. `operators.publish.PublishMediaOperator` runs it in an Airflow task.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import ObjectStoragePath
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from airflow_provider_genmedia import __version__
from airflow_provider_genmedia.apis.base import validate_model
from airflow_provider_genmedia.downloads import CHUNK_SIZE, DEFAULT_MAX_BYTES, Download, download_to
from airflow_provider_genmedia.exceptions import GenMediaStorageError, GenMediaValidationError, LinkExpiredError
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, TaskStatus
from airflow_provider_genmedia.urls import check_http_url, public_url

if TYPE_CHECKING:
    from airflow_provider_genmedia.safe_fetch import FetchPolicy

log = logging.getLogger(__name__)

#: File name of each output under the destination; ``str.format`` fields below, Jinja runs first.
DEFAULT_FILE_NAME = "{api}_{task_id}_{index}.{ext}"
DEFAULT_MANIFEST_NAME = "{api}_{task_id}.manifest.json"
FILE_NAME_FIELDS = ("api", "task_id", "index", "ext", "kind")
_EXTENSIONS = {"jpeg": "jpg"}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
#: Reads a vendor task again, for the links of its outputs as the vendor signs them now.
ResultRefresher = Callable[[GenerationResult], GenerationResult]


def _extension(output: MediaOutput) -> str:
    """The file extension of an output: its format, else its link's; vendor data, so only safe name characters."""
    fmt = output.format or posixpath.splitext(urlsplit(output.url).path)[1].lstrip(".") or "bin"
    fmt = _UNSAFE_NAME_CHARS.sub("_", fmt.lower()).strip("._") or "bin"
    return _EXTENSIONS.get(fmt, fmt)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class MediaPublisher:
    """Publish the outputs of one `GenerationResult` under ``destination``: the engine of `PublishMediaOperator`.

    :param destination: The folder to publish into (any ``ObjectStoragePath``: ``file://``, ``s3://``, ...).
    :param refresh: Reads the vendor task again when a link expired (once per publish); None: an expired link fails.
    :param fetch_policy: Which non-public origins the downloads may reach (the vendor connection's own and
        ``[genmedia] allowed_private_origins``); None: only those of the setting.
    """

    def __init__(
        self,
        destination: ObjectStoragePath,
        *,
        file_name: str = DEFAULT_FILE_NAME,
        manifest_name: str = DEFAULT_MANIFEST_NAME,
        max_bytes: int = DEFAULT_MAX_BYTES,
        chunk_size: int = CHUNK_SIZE,
        refresh: ResultRefresher | None = None,
        fetch_policy: FetchPolicy | None = None,
    ) -> None:
        self.destination = destination
        self.fs: AbstractFileSystem = destination.fs
        self.root = destination.path.rstrip("/")
        self.file_name = file_name
        self.manifest_name = manifest_name
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self.refresh = refresh
        # requests, with the link policy: at execute time, so that a DAG file importing the operator pays for no HTTP
        # client at parse.
        from airflow_provider_genmedia.safe_fetch import FetchPolicy, SafeSession

        self._session = SafeSession(fetch_policy or FetchPolicy.for_connection(None))
        self._refreshed: GenerationResult | None = None

    @property
    def local(self) -> bool:
        """True on a local file system, where a rename is atomic."""
        return isinstance(self.fs, LocalFileSystem)

    def uri(self, fs_path: str) -> str:
        """The URI of a path on the destination's file system (no connection id in it)."""
        return f"{self.destination.protocol}://{fs_path}"

    def publish(self, result: Mapping[str, Any] | GenerationResult) -> dict[str, Any]:
        """Publish every output (named by the vendor's index of it, ``source_indexes``) and the manifest; return
        ``{"destination", "manifest", "files"}``."""
        generation = validate_model(GenerationResult, result, prefix="result")
        destination = self.uri(self.root)
        if not generation.outputs:
            log.info(
                "%s task %s has no output to publish (%d rejected): nothing written",
                generation.api,
                generation.task_id,
                len(generation.rejected),
            )
            return {"destination": destination, "manifest": None, "files": []}
        for position, output in enumerate(generation.outputs):
            check_http_url(output.url, f"outputs[{position}].url")
        indexed = generation.indexed_outputs()
        names = [self._name(generation, output, index) for index, output in indexed]
        if len(set(names)) != len(names):
            raise GenMediaValidationError("file_name", f"{self.file_name!r} gives several outputs the same name")
        manifest_path = self._path(self._format(self.manifest_name, generation, None, 0))
        previous = self._previous_entries(manifest_path)
        try:
            files = [
                self._publish_one(generation, output, index, name, previous.get(name))
                for (index, output), name in zip(indexed, names, strict=True)
            ]
        finally:
            self._session.close()
        manifest = self._manifest(generation, files)
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
        """The SHA-256 of the file stored at ``fs_path`` (streamed), or None when there is none."""
        self.fs.invalidate_cache(fs_path)
        if not self.fs.exists(fs_path):
            return None
        with self.fs.open(fs_path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()

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
        """The output's link as the vendor signs it now: the task is re-read once per publish, with `refresh`."""
        if self.refresh is None:
            raise LinkExpiredError(f"the link of {result.api} task {result.task_id} output {index} expired")
        if self._refreshed is None:
            log.warning(
                "The link of %s task %s output %d expired: re-reading the task", result.api, result.task_id, index
            )
            self._refreshed = self.refresh(result)
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
            raise GenMediaStorageError(f"{self.uri(final)} holds {stored} bytes after the upload, not {size}")

    def _commit_bytes(self, final: str, content: bytes) -> None:
        """Write a small file (the manifest) atomically, unless the same bytes are already there."""
        if self._stored_sha256(final) == hashlib.sha256(content).hexdigest():
            return
        with self._staging(final) as (staging_path, file):
            file.write(content)
            file.close()
            self._commit_file(staging_path, final, len(content))

    # -- manifest ------------------------------------------------------------------------------------------

    def _manifest(self, result: GenerationResult, files: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """What was published and from what (with the job's usage and estimated cost): stable across re-runs that
        change nothing."""
        approved = [approval.model_dump(mode="json") for approval in result.approved]
        return {
            "api": result.api,
            "task_id": result.task_id,
            "prompt": result.prompt,
            "model": result.model,
            "seed": result.seed,
            "usage": result.usage.model_dump(mode="json") if result.usage else None,
            "files": [{key: value for key, value in file.items() if key != "written"} for file in files],
            "rejected": [
                {
                    "index": item.index,
                    "reason": item.reason,
                    "cause": item.cause,
                    "nsfw": item.output.nsfw.model_dump(mode="json") if item.output.nsfw else None,
                    "source_url": public_url(item.output.url),
                }
                for item in result.rejected
            ],
            **({"approved_by_review": approved} if approved else {}),
            "generator": f"airflow-provider-genmedia {__version__}",
        }
