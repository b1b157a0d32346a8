"""What a DAG file pays at parse: the modules it imports from the provider load no HTTP client, image or model
library (each checked in a fresh interpreter, since this session has imported them all already)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import airflow_provider_genmedia.operators
import airflow_provider_genmedia.sensors

#: Libraries a run needs and a parse must not load.
HEAVY = ("aiohttp", "requests", "PIL", "numpy", "onnxruntime")
#: Every module a DAG file imports: the package, its operators and its sensors.
DAG_FACING = [
    "airflow_provider_genmedia",
    *(
        f"{package.__name__}.{module.name}"
        for package in (airflow_provider_genmedia.operators, airflow_provider_genmedia.sensors)
        for module in pkgutil.iter_modules(package.__path__)
    ),
]
#: Imports what every DAG file has loaded already (Airflow's SDK and standard operators: on Airflow 3.0 they load
#: aiohttp themselves), then the module; prints the heavy libraries the module added.
PROBE = """
import importlib, json, sys
import airflow.sdk
import airflow.providers.standard.operators.empty
already = {name for name in sys.argv[2:] if name in sys.modules}
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(name for name in sys.argv[2:] if name in sys.modules and name not in already)))
"""


def test_every_operator_and_sensor_module_is_checked() -> None:
    assert {"airflow_provider_genmedia.operators.publish", "airflow_provider_genmedia.sensors.task"} <= set(DAG_FACING)


@pytest.mark.parametrize("module", DAG_FACING)
def test_a_dag_facing_module_adds_no_heavy_library(module: str) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, module, *HEAVY], capture_output=True, text=True, check=True, timeout=120
    )

    assert json.loads(probe.stdout.splitlines()[-1]) == []
