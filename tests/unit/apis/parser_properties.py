"""The property every adapter's parsers share: whatever a vendor answers, a parser returns its reading or raises one of
the provider's own errors (`GenMediaError`), never a ``KeyError``, ``TypeError`` or ``AttributeError``; and what it
returns can be stored (the result as JSON, for XCom)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from airflow_provider_genmedia.apis.base import TaskApi
from airflow_provider_genmedia.exceptions import GenMediaError
from airflow_provider_genmedia.results import GenerationResult

RECEIVED_AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _read(parse: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``parse(*args)``, or None where it raised one of the provider's errors; any other error propagates."""
    try:
        return parse(*args, **kwargs)
    except GenMediaError:
        return None


def check_parsers(api: TaskApi, body: Any) -> None:
    """Run every parser of ``api`` on ``body``, as the hook does with an answer, and check what each gives back."""
    task_id = _read(api.parse_submit, body)
    assert task_id is None or (isinstance(task_id, str) and task_id)
    _read(api.parse_progress, body)
    for result in (_read(api.parse_result, "t-1", body, received_at=RECEIVED_AT), _read(api.task_failure, "t-1", body)):
        assert result is None or isinstance(result, GenerationResult)
        if result is not None:
            GenerationResult.model_validate_json(result.model_dump_json())
    api.parse_error(body)  # any JSON values: the hook makes text of them
    if isinstance(body, dict):
        _read(api.reported_usage, body)
