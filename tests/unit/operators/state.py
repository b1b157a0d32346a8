"""What Airflow hands an operator's context for its state, as a test builds it."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_genmedia.apis.base import Submission
from airflow_provider_genmedia.outcomes import airflow_outcomes
from airflow_provider_genmedia.pay_once import PayOnce
from airflow_provider_genmedia.results import GenerationResult


class StateStore:
    """Airflow's task_state_store as an operator sees it: JSON values under keys, shared by every try."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def submit_as_operator(pay_once: PayOnce, submission: Submission) -> tuple[str, GenerationResult | None]:
    """``pay_once.submit`` as a submit operator calls it: its errors become Airflow's outcomes
    (`airflow_provider_genmedia.outcomes`)."""
    with airflow_outcomes(on_uncertain_submit=pay_once.on_uncertain_submit):
        return pay_once.submit(submission)
