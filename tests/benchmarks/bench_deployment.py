"""Benchmark: waits for paid jobs on a real Airflow deployment, next to Airflow's own sensors and a minimal job.

Run: ``.venv/bin/python tests/benchmarks/bench_deployment.py [--tasks 300] [--seconds 60] [--variants ...]``
(not collected by pytest; about 3 minutes per variant at 300 tasks).

Each variant runs on a fresh deployment of ``genmedia_stack`` (api-server, scheduler, dag-processor and
triggerer as separate processes, LocalExecutor with parallelism 4, SQLite) with the emulator as the vendor, and one
DAG of ``--tasks`` tasks whose waits end ``--seconds`` after their start:

- ``genmedia-sensor``: `GenMediaTaskSensor(deferrable=True)` (it starts in the triggerer), each on a Novita task
  the benchmark submitted beforehand (as another system would) just before the DAG appears;
- ``genmedia-sensor-worker``: the same with ``start_from_trigger=False`` (one check on a worker, then the wait);
- ``genmedia-job``: `NovitaImg2ImgOperator(deferrable=True)`, each submitting a job that takes ``--seconds``;
- ``datetime-resumed``: Airflow's ``DateTimeSensorAsync(start_from_trigger=True)``, resumed on a worker;
- ``datetime-ended``: the same with ``end_from_trigger=True``, which the triggerer ends;
- ``minimal-job``: an operator that runs once on a worker and waits on ``DateTimeTrigger(end_from_trigger=True)``.

Printed per variant: makespan (the DAG run's start to its end), whole-deployment CPU per task (user+system time of
every component's process tree, the worker processes and the PostgreSQL server included, over the run), worker runs
per task (the scheduler's "TaskInstance Finished" lines), detection lag p50/p99 (a task's end minus the end of what it
waited for: the vendor task's, or the sensor's target time) and vendor polls per task (the emulator's count).
"""

from __future__ import annotations

import argparse
import compileall
import json
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

from genmedia_stack import Deployment, EmulatorProcess

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.deployment.observe import worker_runs  # noqa: E402

DAG_ID = "bench"
API_KEY = "bench-key"
HEADER = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

START = pendulum.datetime(2026, 1, 1, tz="UTC")
"""


@dataclass(frozen=True)
class Variant:
    """One DAG shape: its source (given what it waits for) and whether the benchmark submits vendor tasks first."""

    name: str
    source: Callable[[list[str], list[float], int, float], str]
    submits_first: bool = False
    vendor_lag: bool = False


def genmedia_sensor(start_from_trigger: bool) -> Callable[[list[str], list[float], int, float], str]:
    def source(task_ids: list[str], _ends: list[float], _tasks: int, _seconds: float) -> str:
        return HEADER + textwrap.dedent(f"""
            import inspect

            from airflow_provider_genmedia.sensors.task import GenMediaTaskSensor

            # Earlier checkouts (--provider-src) took no such argument: they always started from the trigger.
            takes_it = "start_from_trigger" in inspect.signature(GenMediaTaskSensor).parameters
            START_ARGS = {{"start_from_trigger": {start_from_trigger!r}}} if takes_it else {{}}

            with DAG("{DAG_ID}", schedule=None, start_date=START, catchup=False):
                for index, vendor_id in enumerate({task_ids!r}):
                    GenMediaTaskSensor(
                        task_id=f"wait_{{index}}", api="novita", genmedia_task_id=vendor_id, deferrable=True,
                        **START_ARGS,
                    )
        """)

    return source


def genmedia_job(_ids: list[str], _ends: list[float], tasks: int, _seconds: float) -> str:
    image = REPO / "example_dags" / "data" / "product.png"
    return HEADER + textwrap.dedent(f"""
        from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator

        with DAG("{DAG_ID}", schedule=None, start_date=START, catchup=False):
            for index in range({tasks}):
                NovitaImg2ImgOperator(
                    task_id=f"job_{{index}}", image={str(image)!r}, prompt=f"a watercolor mug, take {{index}}",
                    model_name="sd_xl_base_1.0.safetensors", image_num=1, response_image_type="png", fit_image=True,
                    deferrable=True,
                )
    """)


def datetime_sensor(end_from_trigger: bool) -> Callable[[list[str], list[float], int, float], str]:
    def source(_ids: list[str], ends: list[float], _tasks: int, _seconds: float) -> str:
        return HEADER + textwrap.dedent(f"""
            from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

            with DAG("{DAG_ID}", schedule=None, start_date=START, catchup=False):
                for index, end in enumerate({ends!r}):
                    DateTimeSensorAsync(
                        task_id=f"wait_{{index}}", target_time=pendulum.from_timestamp(end),
                        start_from_trigger=True, end_from_trigger={end_from_trigger!r},
                    )
        """)

    return source


def minimal_job(_ids: list[str], _ends: list[float], tasks: int, seconds: float) -> str:
    return HEADER + textwrap.dedent(f"""
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
        from airflow.sdk import BaseOperator, timezone


        class MinimalJob(BaseOperator):
            def execute(self, context):
                moment = timezone.utcnow() + timedelta(seconds={seconds})
                self.defer(trigger=DateTimeTrigger(moment=moment, end_from_trigger=True), method_name="done")

            def done(self, context, event=None):
                return None


        with DAG("{DAG_ID}", schedule=None, start_date=START, catchup=False):
            for index in range({tasks}):
                MinimalJob(task_id=f"job_{{index}}")
    """)


VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("genmedia-sensor", genmedia_sensor(True), submits_first=True, vendor_lag=True),
        Variant("genmedia-sensor-worker", genmedia_sensor(False), submits_first=True, vendor_lag=True),
        Variant("genmedia-job", genmedia_job, vendor_lag=True),
        Variant("datetime-resumed", datetime_sensor(False)),
        Variant("datetime-ended", datetime_sensor(True)),
        Variant("minimal-job", minimal_job),
    )
}


def tree_cpu(deployment: Deployment) -> dict[str, float]:
    """User+system seconds of every live process of each component (LocalExecutor's workers are the scheduler's)
    and of the PostgreSQL server (its backends are its children), with the reaped children each one counted."""
    leaders = deployment.all_processes()
    seconds = dict.fromkeys(leaders, 0.0)
    for name, leader in leaders.items():
        try:
            processes = [psutil.Process(leader.pid), *psutil.Process(leader.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            seconds[name] += times.user + times.system + times.children_user + times.children_system
    return seconds


def submit_vendor_tasks(emulator: EmulatorProcess, count: int) -> list[str]:
    """Submit ``count`` Novita txt2img tasks straight to the emulator, as another system would."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    body = {
        "request": {
            "model_name": "sd_xl_base_1.0.safetensors",
            "width": 512,
            "height": 512,
            "image_num": 1,
            "steps": 20,
            "guidance_scale": 7.5,
            "sampler_name": "Euler a",
        }
    }
    ids = []
    for index in range(count):
        body["request"]["prompt"] = f"a lighthouse, take {index}"
        answer = session.post(f"{emulator.url}/v3/async/txt2img", json=body, timeout=10)
        answer.raise_for_status()
        ids.append(answer.json()["task_id"])
    return ids


def all_task_instances(deployment: Deployment, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of the run, page by page (the REST API gives at most 100 at a time)."""
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"
    instances: list[dict[str, Any]] = []
    while page := deployment.api("GET", path, params={"limit": 100, "offset": len(instances)})["task_instances"]:
        instances += page
    return instances


def epoch(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC).timestamp()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def run_variant(
    variant: Variant, tasks: int, seconds: float, cap: float, root: Path, provider: Path | None
) -> dict[str, Any]:
    """One variant on a fresh deployment (its components running the provider from ``provider`` when given); its
    figures."""
    emulator = EmulatorProcess(
        log=root / "emulator.log", api_key=API_KEY, arguments=["--image-seconds", str(seconds), "--seed", "7"]
    )
    emulator.start()
    deployment = Deployment(
        root=root,
        dag_sources=[],
        emulator=emulator,
        # A DAG file written after the start is found within seconds (the default looks every 5 minutes).
        extra_env={"AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"}
        | ({"PYTHONPATH": str(provider)} if provider else {}),
    )
    try:
        deployment.start()
        ids = submit_vendor_tasks(emulator, tasks) if variant.submits_first else []
        ends = [time.time() + seconds] * tasks
        (deployment.dags / f"{DAG_ID}.py").write_text(variant.source(ids, ends, tasks, seconds))
        deployment.wait_for_dags(DAG_ID, timeout=180)
        deployment.unpause(DAG_ID)
        cpu_before = tree_cpu(deployment)
        run_id = deployment.trigger(DAG_ID)
        try:
            state = deployment.wait_for_run(DAG_ID, run_id, timeout=cap)
        except AssertionError:
            state = f"unfinished after {cap:.0f} s"
        cpu = {name: spent - cpu_before.get(name, 0.0) for name, spent in tree_cpu(deployment).items()}
        run = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        instances = all_task_instances(deployment, run_id)
        stats = emulator.stats()
        lags = task_lags(deployment, run_id, instances, stats, ends) if variant.vendor_lag else []
        if not variant.vendor_lag and variant.name.startswith("datetime"):
            lags = [end - ends[0] for end in (epoch(ti["end_date"]) for ti in instances) if end is not None]
        started, ended = epoch(run["start_date"]), epoch(run["end_date"])
        polls = [task["polls"] for task in stats["tasks"].values()]
        return {
            "variant": variant.name,
            "state": state,
            "succeeded": sum(ti["state"] == "success" for ti in instances),
            "makespan": None if started is None or ended is None else ended - started,
            "cpu_per_task": sum(cpu.values()) / tasks,
            "cpu_per_task_by_component": {name: round(spent / tasks, 3) for name, spent in cpu.items()},
            "worker_runs_per_task": sum(worker_runs(deployment, DAG_ID, run_id).values()) / tasks,
            "lag_p50": statistics.median(lags) if lags else None,
            "lag_p99": percentile(lags, 0.99) if lags else None,
            "polls_per_task": statistics.mean(polls) if polls else None,
        }
    finally:
        deployment.stop()
        emulator.stop()


def task_lags(
    deployment: Deployment, run_id: str, instances: list[dict[str, Any]], stats: dict[str, Any], ends: list[float]
) -> list[float]:
    """Each finished task's end minus the end of the vendor task it waited for (found by its XCom)."""
    lags = []
    for ti in instances:
        end = epoch(ti["end_date"])
        if ti["state"] != "success" or end is None:
            continue
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/xcomEntries/return_value"
        value = deployment.api("GET", path)["value"]
        result = json.loads(value) if isinstance(value, str) else value
        lags.append(end - stats["tasks"][result["task_id"]]["finished_at"])
    return lags


def cell(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each wait lasts")
    parser.add_argument("--cap", type=float, default=900.0, help="give a run up this many seconds")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--provider-src",
        type=Path,
        help="run the components with the provider of this checkout (a git worktree of an earlier commit), to compare",
    )
    arguments = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the running deployment on the way out
    # pip compiles a wheel's modules when it installs them; a checkout run where PYTHONDONTWRITEBYTECODE is set (as on
    # this machine) would compile the provider again in every worker run and parse, which no deployment pays.
    compileall.compile_dir((arguments.provider_src or REPO) / "airflow_provider_genmedia", quiet=1)
    rows = []
    for name in arguments.variants.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
            row = run_variant(
                VARIANTS[name], arguments.tasks, arguments.seconds, arguments.cap, Path(folder), arguments.provider_src
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    source = f"the provider from {arguments.provider_src}" if arguments.provider_src else "this checkout's provider"
    print(f"\n{arguments.tasks} tasks per variant, waits of {arguments.seconds:.0f} s, fresh deployments, {source}\n")
    print("| variant | run | makespan | CPU per task | worker runs per task | lag p50 / p99 | polls per task |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        lag = f"{cell(row['lag_p50'], ' s', 1)} / {cell(row['lag_p99'], ' s', 1)}"
        print(
            f"| {row['variant']} | {row['state']}, {row['succeeded']} ok | {cell(row['makespan'], ' s', 0)} "
            f"| {cell(row['cpu_per_task'], ' s')} | {cell(row['worker_runs_per_task'])} | {lag} "
            f"| {cell(row['polls_per_task'], '', 1)} |"
        )
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
