"""One adapter per vendor API: request models, routes, status mapping and parsers.

An adapter's module is imported when its API is first asked for, so that a DAG file using one API (parsed by the
dag-processor and again by every worker run) does not load the other three.
"""

from __future__ import annotations

import functools
import importlib

from airflow_provider_genmedia.apis.base import TaskApi
from airflow_provider_genmedia.exceptions import GenMediaValidationError

#: Each API's adapter class, by the API's name.
_ADAPTERS: dict[str, str] = {
    "novita": "airflow_provider_genmedia.apis.novita.NovitaApi",
    "jimeng": "airflow_provider_genmedia.apis.jimeng.JimengApi",
    "bailian": "airflow_provider_genmedia.apis.bailian.BailianApi",
    "avatar": "airflow_provider_genmedia.apis.avatar.AvatarApi",
}
API_NAMES: tuple[str, ...] = tuple(_ADAPTERS)

#: The vendors' own endpoints: the default base URL of a ``novita`` and of a ``gptge`` connection.
NOVITA_BASE_URL = "https://api.novita.ai"
GPTGE_BASE_URL = "https://api.gpt.ge"

__all__ = ["API_NAMES", "GPTGE_BASE_URL", "NOVITA_BASE_URL", "TaskApi", "apis_on", "get_api"]


@functools.cache
def get_api(name: str) -> TaskApi:
    """The adapter of API ``name`` (one of `API_NAMES`)."""
    try:
        module, _, class_name = _ADAPTERS[name].rpartition(".")
    except KeyError:
        raise GenMediaValidationError("api", f"unknown API {name!r}; expected one of {API_NAMES}") from None
    api: TaskApi = getattr(importlib.import_module(module), class_name)()
    return api


def apis_on(conn_type: str) -> tuple[TaskApi, ...]:
    """The adapters of the APIs that a connection of type ``conn_type`` serves."""
    return tuple(api for api in map(get_api, API_NAMES) if api.conn_type == conn_type)
