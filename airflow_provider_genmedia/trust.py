"""Trust only what the DAG author wrote: a location that came from a template must fall under the configured roots.

A value written literally in the DAG file is the author's, and trusted. A value rendered from a template (a Jinja
string, which can read ``params``, ``dag_run.conf`` or XCom; an ``XComArg``; a mapped task's ``expand()`` argument
resolved from XCom; an ``ObjectStoragePath`` whose path is a template; a callable) may come from whoever triggers
the DAG or from an upstream task, and a local path or object-storage URI among them must fall under the roots of its
kind: ``[genmedia] input_roots`` for what an operator reads, ``[genmedia] destination_roots`` for where it writes.

`TemplatedFieldsRecorder` notes which fields are templated while Airflow renders them (no I/O: it looks at the
values only); `check_locations`, called in ``execute`` before anything is read, sent or paid for, refuses a templated
location outside its roots with a `GenMediaValidationError` naming the setting and the field. http(s) URLs are not
the roots' business: see "Links the provider fetches" in the security documentation.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import ObjectStoragePath

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.inputs import is_local_file, looks_like_path
from airflow_provider_genmedia.urls import is_http_url

INPUT_ROOTS: Final = "input_roots"
DESTINATION_ROOTS: Final = "destination_roots"
RootsSetting = Literal["input_roots", "destination_roots"]
#: ``[genmedia] destination_roots`` when unset: the scratch folder the example DAGs publish into by default.
DEFAULT_DESTINATION_ROOT = (Path(tempfile.gettempdir()) / "genmedia").as_uri()
_SHOWN_CHARS = 200
#: A ``Param`` pattern for a destination typed in the trigger form: a ``scheme://`` URI, no spaces, no Jinja.
DESTINATION_PARAM_PATTERN = r"^[a-z][a-z0-9+.-]*://[^\s{}%]+$"
#: A ``Param`` pattern for an input image typed in the trigger form: an http(s) URL, or a path or URI of a PNG,
#: JPEG or WebP file; no spaces, no Jinja.
IMAGE_PARAM_PATTERN = r"^(https?://[^\s{}]+|[^\s{}%]+\.(png|jpe?g|webp))$"
#: A ``Param`` pattern for a link the vendor fetches: an http(s) URL with no spaces.
LINK_PARAM_PATTERN = r"^https?://[^\s{}]+$"


@dataclass(frozen=True)
class Location:
    """A local path or object-storage URI in one canonical form: scheme (``file`` for a local path), the authority
    (bucket, with any connection id before ``@``) and the normalised path's parts."""

    scheme: str
    authority: str
    parts: tuple[str, ...]

    def is_under(self, root: Location) -> bool:
        """True when this location is ``root`` or inside it, compared part by part (``/a/bc`` is not under ``/a/b``)."""
        return (self.scheme, self.authority) == (root.scheme, root.authority) and self.parts[
            : len(root.parts)
        ] == root.parts


def _local(path: str) -> Location:
    """A local path, made absolute with ``~``, ``..`` and symlinks resolved, so that none of them can escape."""
    resolved = Path(path).expanduser().resolve()
    return Location("file", "", resolved.parts)


def location(value: str) -> Location:
    """The canonical `Location` of a local path or ``scheme://`` URI (``file://`` is a local path)."""
    text = value.strip()
    if "://" not in text:
        return _local(text)
    split = urlsplit(text)
    scheme = split.scheme.lower()
    if scheme in ("file", "local"):
        return _local(unquote(split.path) or "/")
    # One leading slash: POSIX keeps a leading "//" as it is, which would make s3://b/x no path under s3://b.
    path = posixpath.normpath("/" + unquote(split.path).lstrip("/"))
    return Location(scheme, split.netloc, PurePosixPath(path).parts)


def roots(setting: RootsSetting) -> list[str]:
    """The prefixes that ``[genmedia] <setting>`` lists (comma-separated), or its default when it is unset:
    ``[core] dags_folder`` for input_roots, `DEFAULT_DESTINATION_ROOT` for destination_roots."""
    default = conf.get("core", "dags_folder") if setting == INPUT_ROOTS else DEFAULT_DESTINATION_ROOT
    configured = conf.get("genmedia", setting, fallback=None)
    text = default if configured is None else configured
    return [root.strip() for root in text.split(",") if root.strip()]


def stored_location(value: Any) -> str | None:
    """The local path or object-storage URI that reading or writing ``value`` would touch; None for anything else
    (bytes, base64, a data URI, an http(s) URL), as `airflow_provider_genmedia.inputs.read_image` tells them apart."""
    if isinstance(value, ObjectStoragePath):
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value) if isinstance(os.fspath(value), str) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or is_http_url(text) or text.startswith("data:"):
        return None
    if "://" in text[:32] or is_local_file(text) or looks_like_path(text):
        return text
    return None


def check_location(field: str, value: Any, setting: RootsSetting) -> None:
    """Refuse ``value`` when it is a local path or URI outside every root of ``[genmedia] <setting>``."""
    where = stored_location(value)
    if where is None:
        return
    allowed = roots(setting)
    try:
        inside = any(location(where).is_under(location(root)) for root in allowed)
    except (OSError, ValueError, RuntimeError):  # a path that cannot be resolved (a symlink loop) is no root's
        inside = False
    if not inside:
        shown = where if len(where) <= _SHOWN_CHARS else f"{where[:_SHOWN_CHARS]}..."
        raise GenMediaValidationError(
            field,
            f"{shown!r} came from a template (params, dag_run.conf or XCom) and is outside [genmedia] {setting} "
            f"({', '.join(allowed) or 'none set'}); write the value in the DAG file, or add its folder to "
            f"[genmedia] {setting}",
        )


def _has_markers(text: str, jinja_env: Any) -> bool:
    """True when ``text`` holds a Jinja block, variable, comment or line statement of ``jinja_env``."""
    markers = (
        jinja_env.block_start_string,
        jinja_env.variable_start_string,
        jinja_env.comment_start_string,
        jinja_env.line_statement_prefix,
        jinja_env.line_comment_prefix,
    )
    return any(marker and marker in text for marker in markers)


def is_literal(value: Any, jinja_env: Any, template_ext: Iterable[str], resolved: set[int]) -> bool:
    """True when rendering leaves ``value`` as written: no Jinja string (nor a file name Airflow reads as a template
    by ``template_ext``), no ``XComArg`` or other resolvable, no callable, no value a mapped task resolved from XCom
    (``resolved``, the ids Airflow hands its rendering), in it or nested in it. Looks at values only, no I/O."""
    from airflow.sdk.definitions._internal.templater import LiteralValue

    extensions = tuple(template_ext)
    seen: set[int] = set()

    def literal(item: Any) -> bool:
        if id(item) in resolved:
            return False
        if isinstance(item, LiteralValue):
            return True
        if isinstance(item, str):
            return not (extensions and item.endswith(extensions)) and not _has_markers(item, jinja_env)
        if isinstance(item, ObjectStoragePath):
            return not _has_markers(str(item.serialize()["path"]), jinja_env)
        if isinstance(item, os.PathLike) or item is None or isinstance(item, bool | int | float | bytes):
            return True
        if getattr(item, "resolve", None) is not None or callable(item):
            return False
        if id(item) in seen:
            return True
        seen.add(id(item))
        if isinstance(item, dict):
            return all(literal(element) for element in item.values())
        if isinstance(item, list | tuple | set | frozenset):
            return all(literal(element) for element in item)
        nested = getattr(item, "template_fields", ())
        return all(literal(getattr(item, name, None)) for name in nested)

    return literal(value)


class TemplatedFieldsRecorder:
    """Mixin of an operator: note which template fields hold a templated value as Airflow renders them, for
    `check_locations` in ``execute``.

    It overrides ``_do_render_template_fields``, the one seam that both mapped and unmapped rendering pass through
    on Airflow 3.0 to 3.3; the note is taken before the values are rendered, and looks at them only (no I/O).
    """

    #: The template fields whose value came from a template in this run (none before rendering).
    templated_fields: frozenset[str] = frozenset()

    def _do_render_template_fields(
        self, parent: Any, template_fields: Iterable[str], context: Any, jinja_env: Any, seen_oids: set[int]
    ) -> None:
        """Note the templated fields of this operator, then render as Airflow does."""
        if parent is self:
            fields = list(template_fields)
            ext = getattr(self, "template_ext", ())
            self.templated_fields = frozenset(
                field for field in fields if not is_literal(getattr(self, field, None), jinja_env, ext, seen_oids)
            )
            template_fields = fields
        super()._do_render_template_fields(  # type: ignore[misc]
            parent, template_fields, context, jinja_env, seen_oids
        )

    def check_locations(
        self, fields: Iterable[str], setting: RootsSetting, value_of: Callable[[str], Any] | None = None
    ) -> None:
        """Refuse a templated local path or URI among ``fields`` that is outside ``[genmedia] <setting>``; a literal
        value is the DAG author's and is not checked. ``value_of`` reads a field's rendered value (default: the
        attribute of that name)."""
        for field in fields:
            if field in self.templated_fields:
                check_location(field, (value_of or partial(getattr, self))(field), setting)
