"""The Airflow the deployment tests run: the one installed next to this interpreter (``make test-compat`` runs each
venv's), and skips for features it lacks."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from packaging.version import Version

AIRFLOW_VERSION = Version(version("apache-airflow"))


def airflow_at_least(minimum: str) -> bool:
    """True when the Airflow the components run is ``minimum`` or newer."""
    return Version(minimum) <= AIRFLOW_VERSION


def requires_airflow(minimum: str, feature: str) -> pytest.MarkDecorator:
    """Skip a test on an Airflow older than ``minimum``, saying which feature it needs and which version ran."""
    return pytest.mark.skipif(
        not airflow_at_least(minimum), reason=f"{feature} needs Airflow {minimum}+; this is {AIRFLOW_VERSION}"
    )
