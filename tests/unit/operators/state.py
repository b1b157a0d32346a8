"""What Airflow hands an operator's context for its state, as a test builds it."""

from __future__ import annotations

import json
from typing import Any


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
