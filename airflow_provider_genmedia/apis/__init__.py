"""One adapter per vendor API: request models, routes, status mapping and parsers."""

from __future__ import annotations

from airflow_provider_genmedia.apis.avatar import AvatarApi
from airflow_provider_genmedia.apis.bailian import BailianApi
from airflow_provider_genmedia.apis.base import TaskApi
from airflow_provider_genmedia.apis.jimeng import JimengApi
from airflow_provider_genmedia.apis.novita import NovitaApi
from airflow_provider_genmedia.exceptions import GenMediaValidationError

_APIS: dict[str, TaskApi] = {api.name: api for api in (NovitaApi(), JimengApi(), BailianApi(), AvatarApi())}
API_NAMES: tuple[str, ...] = tuple(_APIS)

__all__ = ["API_NAMES", "TaskApi", "apis_on", "get_api"]


def get_api(name: str) -> TaskApi:
    """The adapter of API ``name`` (one of `API_NAMES`)."""
    try:
        return _APIS[name]
    except KeyError:
        raise GenMediaValidationError("api", f"unknown API {name!r}; expected one of {API_NAMES}") from None


def apis_on(conn_type: str) -> tuple[TaskApi, ...]:
    """The adapters of the APIs that a connection of type ``conn_type`` serves."""
    return tuple(api for api in _APIS.values() if api.conn_type == conn_type)
